from django.core.management.base import BaseCommand, CommandError

from operations.drills import DrillError
from operations.models import BackupRecord
from operations.restore_org import organization_restore


class Command(BaseCommand):
    help = (
        "Restore one organisation's schema from a backup (default: the newest) into a new, "
        "inactive organisation <slug>-restored-<YYYYMMDD>, for inspection. No other "
        "organisation is touched."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--backup", help="a backup's file name (default: the newest good one)")
        parser.add_argument("--as", dest="new_slug", help="the new organisation's slug")

    def handle(self, *args, slug, backup=None, new_slug=None, **options):
        from django.core.exceptions import ValidationError

        from tenants.models import Organization

        record = None
        if backup:
            record = BackupRecord.objects.filter(file_name=backup, status="ok").first()
            if record is None:
                raise CommandError(f"no good backup named {backup}")
        try:
            result = organization_restore(slug=slug, backup=record, new_slug=new_slug)
        except Organization.DoesNotExist:
            raise CommandError(f"no organisation {slug!r}") from None
        except (DrillError, ValidationError) as err:
            raise CommandError(str(err)) from None
        self.stdout.write(f"✅ {result['summary']}; schema {result['schema']}")
