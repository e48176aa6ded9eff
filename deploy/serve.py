"""`make serve`: gunicorn (config/gunicorn.conf.py), the django-q2 worker and the WAL shipper
(`ship_wal --follow`, operations/wal_archive.py) side by side.

gunicorn starts first and is given time to check the settings and the database (it refuses with
one line and exit 1); the worker and the shipper start once the web server listens. Either that
dies is started again after a pause (the web server keeps serving); the web server stopping,
Ctrl-C or TERM stops all, the web server gracefully (requests in progress finish). systemd or a
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
SHIPPER = [PY, "manage.py", "ship_wal", "--follow"]
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
    cmds = {"worker": WORKER, "WAL shipper": SHIPPER}
    procs = {} if stopping else {name: _start(cmd) for name, cmd in cmds.items()}
    started = dict.fromkeys(procs, time.monotonic())
    pause, code = dict.fromkeys(procs, 1.0), 0
    while not stopping:
        if web.poll() is not None:
            _say(f"the web server exited with {web.returncode}; stopping the worker.")
            code, stopping = web.returncode or 1, True
            break
        for name, proc in procs.items():
            if proc.poll() is None:
                continue
            if time.monotonic() - started[name] > 60:
                pause[name] = 1.0  # it had been running fine: not a crash loop
            _say(f"the {name} exited with {proc.returncode}; starting it again in {pause[name]:.0f}s.")
            time.sleep(pause[name])
            pause[name] = min(pause[name] * 2, 30.0)
            if not stopping:
                procs[name], started[name] = _start(cmds[name]), time.monotonic()
        time.sleep(0.3)
    _say("stopping the web server and the worker...")
    if "worker" in procs:
        # qcluster winds down promptly on INT (on TERM it waits out its guard cycle).
        _stop(procs["worker"], signal.SIGINT, 15)
    if "WAL shipper" in procs:
        _stop(procs["WAL shipper"], signal.SIGTERM, 15)  # ends between two segments
    _stop(web, signal.SIGTERM, GRACE)
    _say("stopped.")
    return code


if __name__ == "__main__":
    sys.exit(main())
