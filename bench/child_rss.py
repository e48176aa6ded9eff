"""Peak RSS of a child process alone, for the import's memory floor (bench and tests).

`os.wait4` on a child spawned straight from this process over-reports: on Linux the child's
ru_maxrss keeps the high-water mark of the memory it shared with this process before its exec
(vfork/fork share the parent's pages), so a 310 MB pytest process made a 90 MB import look like
310 MB. The child is therefore started by a tiny launcher interpreter, which forks and execs the
real command and reports that grandchild's ru_maxrss: its pre-exec memory is the launcher's few MB.
"""

from __future__ import annotations

import subprocess
import sys

MARK = "CHILD_PEAK_RSS_KB="

_LAUNCHER = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execv(sys.argv[1], sys.argv[1:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    f"sys.stderr.write('\\n{MARK}%d\\n' % usage.ru_maxrss)\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_measured(cmd: list[str], *, timeout: float = 3600, **popen) -> tuple[int, str, str, int]:
    """Run `cmd` (its first element an executable path): (exit status, stdout, stderr without
    the launcher's line, peak RSS of the command alone in MB)."""
    proc = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        **popen,
    )
    err, _, rss = proc.stderr.rpartition(MARK)
    return proc.returncode, proc.stdout, err.rstrip("\n"), int(rss.strip() or 0) // 1024
