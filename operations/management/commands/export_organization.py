from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from operations.restore_org import organization_export


class Command(BaseCommand):
    help = "pg_dump -Fc one organisation's schema on its own (restore it with restore_organization's steps or pg_restore --schema)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--output", help="file to write (default: BACKUP_DIR/org-<slug>-<time>Z.dump)")

    def handle(self, *args, slug, output=None, **options):
        from tenants.models import Organization

        try:
            path = organization_export(slug=slug, target=Path(output) if output else None)
        except Organization.DoesNotExist:
            raise CommandError(f"no organisation {slug!r}") from None
        self.stdout.write(f"✅ {slug}: {path} ({path.stat().st_size} bytes)")
