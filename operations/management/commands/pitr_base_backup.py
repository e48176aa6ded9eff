from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from operations.backups import _conninfo
from operations.pitr import PitrError, base_backup


class Command(BaseCommand):
    help = "pg_basebackup of this database's server (plain format, WAL streamed) into a new directory: the base a point-in-time restore replays archived WAL onto."

    def add_arguments(self, parser):
        parser.add_argument("target", help="a directory that does not exist yet")

    def handle(self, *args, target, **options):
        path = Path(target)
        if path.exists():
            raise CommandError(f"{path} exists")
        try:
            base_backup(_conninfo(), path)
        except PitrError as err:
            raise CommandError(str(err)) from None
        self.stdout.write(f"✅ base backup in {path}")
