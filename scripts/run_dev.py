"""`make run`: the web app and the django-q2 worker side by side; Ctrl-C stops both cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

PY = sys.executable
PORT = os.environ.get("PORT", "8000")


def _start(cmd: list[str]) -> subprocess.Popen:
    # Own process group, so Ctrl-C reaches this supervisor once and it stops each child in turn.
    return subprocess.Popen(cmd, start_new_session=True)


def main() -> int:
    procs = {
        "web": _start([PY, "manage.py", "runserver", f"0.0.0.0:{PORT}"]),
        "worker": _start([PY, "manage.py", "qcluster"]),
    }
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, proc in procs.items():
            code = proc.poll()
            if code is not None:
                print(f"\n{name} exited with {code}; stopping the rest.", file=sys.stderr)
                exit_code, stopping = code or 1, True
        time.sleep(0.3)
    print("\nStopping web and worker...", file=sys.stderr)
    # qcluster winds down promptly on INT (on TERM it waits out its guard cycle); runserver on TERM.
    for name, sig in (("worker", signal.SIGINT), ("web", signal.SIGTERM)):
        if procs[name].poll() is None:
            os.killpg(procs[name].pid, sig)
    deadline = time.time() + 15
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    print(
        "Stopped. (The embedded database keeps running; `make db-stop` stops it.)", file=sys.stderr
    )
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
