from django.core.management.base import BaseCommand, CommandError

from operations.backups import backups_monitor


class Command(BaseCommand):
    help = "Fail (exit 1) when the newest backup is missing, too old, empty, much smaller than the previous one, or unreadable."

    def add_arguments(self, parser):
        parser.add_argument(
            "--max-age-hours", type=float, default=None, help="default: BACKUP_MAX_AGE_HOURS (26)"
        )

    def handle(self, *args, max_age_hours=None, **options):
        if max_age_hours is not None and max_age_hours <= 0:
            raise CommandError("--max-age-hours must be positive.")
        result = backups_monitor(max_age_hours=max_age_hours)
        if not result.ok:
            raise CommandError(f"❌ {result.message}", returncode=1)
        self.stdout.write(f"✅ {result.message}")
