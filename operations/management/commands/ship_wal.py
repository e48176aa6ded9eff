import signal
import sys
import threading
import time

from django.core.management.base import BaseCommand, CommandError

from operations.offsite import OffsiteError
from operations.wal_archive import wal_ship_follow, wal_upload


class Command(BaseCommand):
    help = (
        "Ship archived WAL off-site (encrypted, read back and compared, then marked). --follow: "
        "keep running, looking at WAL_ARCHIVE_DIR every WAL_SHIP_POLL_SECONDS (default 5) and "
        "copying each new segment at once; S3 errors are retried, TERM or INT stops it (exit 0). "
        "Without --follow: one pass, as `upload_wal`."
    )

    def add_arguments(self, parser):
        parser.add_argument("--follow", action="store_true", help="run until TERM/INT")
        parser.add_argument("--poll", type=float, help="seconds (default WAL_SHIP_POLL_SECONDS)")

    def handle(self, *args, follow, poll, **options):
        if not follow:
            try:
                self.stdout.write(str(wal_upload()))
            except OffsiteError as err:
                raise CommandError(str(err)) from None
            return
        stop = threading.Event()

        def on_signal(signum, frame):
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

        def say(message: str) -> None:
            # One line per event, on stderr like the worker's log (journald, make run's console).
            print(f"[ship_wal {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

        wal_ship_follow(stop, poll_seconds=poll, say=say)
        say("stopped")
