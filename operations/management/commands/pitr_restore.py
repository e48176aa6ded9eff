from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from operations.pitr import PitrError, restore_to_time, server_user


class Command(BaseCommand):
    help = (
        "Restore the cluster to a point in time: copy a base backup into a NEW data directory, "
        "replay archived WAL up to --to, promote and start it on --port. The server is left "
        "running for inspection (stop: pg_ctl -D <datadir> stop)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base", required=True, help="a pitr_base_backup directory")
        parser.add_argument("--archive", required=True, help="the archive_command's directory")
        parser.add_argument("--to", required=True, help="timestamp with zone, e.g. '2026-12-01 20:15:00+00'")
        parser.add_argument("--datadir", required=True, help="new data directory")
        parser.add_argument("--port", type=int, required=True)

    def handle(self, *args, base, archive, to, datadir, port, **options):
        target = Path(datadir).absolute()
        try:
            conninfo = restore_to_time(
                base=Path(base).absolute(),
                archive=Path(archive).absolute(),
                target_time=to,
                datadir=target,
                port=port,
                user=server_user(target.parent),
            )
        except PitrError as err:
            raise CommandError(str(err)) from None
        self.stdout.write(f"✅ restored to {to}: {conninfo}")
