from django.core.management.base import BaseCommand, CommandError

from operations.backups import backup_create


class Command(BaseCommand):
    help = "Back up the whole database (every schema) with pg_dump -Fc into BACKUP_DIR, then prune old backups."

    def handle(self, *args, **options):
        try:
            record = backup_create()
        except Exception as err:
            raise CommandError(f"backup failed: {err}") from None
        self.stdout.write(
            f"backup {record.file_name}: {record.size_bytes} bytes, sha256 {record.sha256[:16]}…, "
            f"{record.duration_seconds:.2f}s"
        )
