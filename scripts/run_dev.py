"""`make run`: the web app, the django-q2 worker and the WAL shipper (`ship_wal --follow`,
operations/wal_archive.py) side by side; Ctrl-C stops them all cleanly.

A worker that dies (killed, out of memory, a crash) is started again after a pause that doubles
from 1 s up to 30 s while it keeps dying (back to 1 s once one has run for a minute); the web
server keeps serving meanwhile; the same for the shipper. The new worker marks the dead one's job runs interrupted
(operations.jobs). If the web server itself exits, everything stops, as before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

PY = sys.executable
PORT = os.environ.get("PORT", "8000")
WEB = [PY, "manage.py", "runserver", f"0.0.0.0:{PORT}"]
WORKER = [PY, "manage.py", "qcluster"]
SHIPPER = [PY, "manage.py", "ship_wal", "--follow"]
BACKOFF_FIRST, BACKOFF_MAX, HEALTHY_AFTER = 1.0, 30.0, 60.0


def _log(message: str) -> None:
    print(f"[run {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _start(cmd: list[str]) -> subprocess.Popen:
    # Own process group, so Ctrl-C reaches this supervisor once and it stops each child in turn.
    return subprocess.Popen(cmd, start_new_session=True)


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


class Worker:
    """The qcluster child (or the shipper), started again with a backoff whenever it exits."""

    def __init__(self, cmd: list[str] = WORKER, name: str = "worker") -> None:
        self.cmd, self.name = cmd, name
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.backoff = BACKOFF_FIRST
        self.restart_at: float | None = None

    def start(self) -> None:
        self.proc, self.started, self.restart_at = _start(self.cmd), time.monotonic(), None

    def check(self) -> None:
        now = time.monotonic()
        if self.proc is not None and self.proc.poll() is not None:
            code, ran = self.proc.returncode, now - self.started
            # Its sentinel and worker processes outlive a killed qcluster parent: end them, or
            # they would keep taking tasks beside the new cluster and survive Ctrl-C.
            _kill_group(self.proc, signal.SIGKILL)
            if ran >= HEALTHY_AFTER:
                self.backoff = BACKOFF_FIRST
            _log(
                f"{self.name} (pid {self.proc.pid}) exited with {code} after {ran:.0f} s; "
                f"starting it again in {self.backoff:.0f} s"
            )
            self.proc, self.restart_at = None, now + self.backoff
            self.backoff = min(self.backoff * 2, BACKOFF_MAX)
        if self.proc is None and self.restart_at is not None and now >= self.restart_at:
            self.start()
            _log(f"{self.name} started again (pid {self.proc.pid})")


def main() -> int:
    web = _start(WEB)
    worker = Worker()
    worker.start()
    shipper = Worker(SHIPPER, "WAL shipper")
    shipper.start()
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        code = web.poll()
        if code is not None:
            _log(f"web server exited with {code}; stopping the worker.")
            exit_code, stopping = code or 1, True
            break
        worker.check()
        shipper.check()
        time.sleep(0.3)
    _log("Stopping web and worker...")
    # qcluster winds down promptly on INT (on TERM it waits out its guard cycle); runserver on TERM.
    procs = [p for p in (worker.proc, shipper.proc, web) if p is not None]
    if worker.proc is not None and worker.proc.poll() is None:
        _kill_group(worker.proc, signal.SIGINT)
    if shipper.proc is not None and shipper.proc.poll() is None:
        _kill_group(shipper.proc, signal.SIGTERM)  # ends between two segments, exit 0
    if web.poll() is None:
        _kill_group(web, signal.SIGTERM)
    deadline = time.time() + 15
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            _kill_group(proc, signal.SIGKILL)
    _log("Stopped. (The embedded database keeps running; `make db-stop` stops it.)")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
