import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from operations.offsite import OffsiteError, offsite_config
from operations.pitr import PitrError, offsite_fetch, restore_to_time, server_user
from operations.wal_archive import archive_dir, base_backups


class Command(BaseCommand):
    help = (
        "Restore the cluster to a point in time: a base backup into a NEW data directory, "
        "archived WAL replayed up to --to, promoted and started on --port. The server is left "
        "running for inspection (stop: pg_ctl -D <datadir> stop). Default: the newest base "
        "backup of PITR_BASE_DIR and WAL_ARCHIVE_DIR; --from-s3: both downloaded from the "
        "bucket and decrypted (the machine is gone)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base", help="a base backup directory (with --from-s3: its name)")
        parser.add_argument("--archive", help="the WAL archive (default WAL_ARCHIVE_DIR)")
        parser.add_argument("--from-s3", action="store_true", help="download base and WAL")
        parser.add_argument(
            "--to",
            required=True,
            help="timestamp with zone, e.g. '2026-12-01 20:15:00+00', or 'latest' (all archived WAL)",
        )
        parser.add_argument("--datadir", required=True, help="new data directory")
        parser.add_argument("--port", type=int, required=True)

    def handle(self, *args, base, archive, from_s3, to, datadir, port, **options):
        target = Path(datadir).absolute()
        try:
            if from_s3:
                config = offsite_config()
                if config is None:
                    raise CommandError("--from-s3: BACKUP_S3_BUCKET is not set")
                download = Path(tempfile.mkdtemp(prefix="pitr-", dir=target.parent))
                download.chmod(0o755)  # the restored server's user reads the WAL from it
                self.stdout.write(f"downloading into {download}")
                base_path, archive_path = offsite_fetch(config, download, name=base)
            else:
                if base is None:
                    found = base_backups()
                    if not found:
                        raise CommandError("no base backup in PITR_BASE_DIR: give --base")
                    base = found[0]
                base_path = Path(base).absolute()
                archive_path = Path(archive).absolute() if archive else archive_dir()
            conninfo = restore_to_time(
                base=base_path,
                archive=archive_path,
                target_time=None if to == "latest" else to,
                datadir=target,
                port=port,
                user=server_user(target.parent),
            )
        except (PitrError, OffsiteError) as err:
            raise CommandError(str(err)) from None
        self.stdout.write(f"✅ restored to {to} from {base_path.name}: {conninfo}")
