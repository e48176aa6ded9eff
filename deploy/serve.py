"""`make serve`: gunicorn (config/gunicorn.conf.py) and the django-q2 worker side by side.

gunicorn starts first and is given time to check the settings and the database (it refuses with
one line and exit 1); the worker starts once the web server listens. A worker that dies is
started again after a pause (the web server keeps serving); the web server stopping, Ctrl-C or
TERM stops both, the web server gracefully (requests in progress finish). systemd or a
Procfile runner supervise the two separately instead (deploy/*.service, Procfile).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
WEB = [PY, "-m", "gunicorn", "-c", "config/gunicorn.conf.py"]
WORKER = [PY, "manage.py", "qcluster"]
GRACE = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30")) + 5


def _say(message: str) -> None:
    print(f"serve: {message}", file=sys.stderr, flush=True)


def _start(cmd: list[str]) -> subprocess.Popen:
    # Own process group: a terminal's Ctrl-C reaches this supervisor once, and it stops each
    # child (and the processes they fork) as a whole.
    return subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen, sig: int, timeout: float) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def main() -> int:
    port = int(os.environ.get("PORT", "8000"))
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    web = _start(WEB)
    while not stopping and web.poll() is None and not _listening(port):
        time.sleep(0.2)
    if web.poll() is not None:
        return web.returncode or 1
    worker = None if stopping else _start(WORKER)
    started, pause, code = time.monotonic(), 1.0, 0
    while not stopping:
        if web.poll() is not None:
            _say(f"the web server exited with {web.returncode}; stopping the worker.")
            code, stopping = web.returncode or 1, True
            break
        if worker.poll() is not None:
            if time.monotonic() - started > 60:
                pause = 1.0  # it had been running fine: not a crash loop
            _say(f"the worker exited with {worker.returncode}; starting it again in {pause:.0f}s.")
            time.sleep(pause)
            pause = min(pause * 2, 30.0)
            if not stopping:
                worker, started = _start(WORKER), time.monotonic()
        time.sleep(0.3)
    _say("stopping the web server and the worker...")
    if worker is not None:
        # qcluster winds down promptly on INT (on TERM it waits out its guard cycle).
        _stop(worker, signal.SIGINT, 15)
    _stop(web, signal.SIGTERM, GRACE)
    _say("stopped.")
    return code


if __name__ == "__main__":
    sys.exit(main())
