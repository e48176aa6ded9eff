from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from operations.backups import _conninfo
from operations.pitr import PitrError, base_backup
from operations.registry import job_runs_for_command
from operations.wal_archive import BASE_BACKUP_KIND


class Command(BaseCommand):
    help = (
        "Base backup of this database's server for point-in-time restores. Without a target: "
        "the scheduled one (tar, gzip, into PITR_BASE_DIR, encrypted off-site when a bucket is "
        "configured, then retention of base backups and archived WAL), recorded as a job run. "
        "With a target: a plain-format copy into that new directory, nothing else."
    )

    def add_arguments(self, parser):
        parser.add_argument("target", nargs="?", help="a directory that does not exist yet")

    def handle(self, *args, target=None, **options):
        if target is None:
            runs = job_runs_for_command(self, kind=BASE_BACKUP_KIND, schemas=[""])
            if runs.errors:
                raise CommandError("base backup failed")
            return
        path = Path(target)
        if path.exists():
            raise CommandError(f"{path} exists")
        try:
            base_backup(_conninfo(), path)
        except PitrError as err:
            raise CommandError(str(err)) from None
        self.stdout.write(f"✅ base backup in {path}")
