"""bench/child_rss.py: the peak RSS of a child alone, whatever the size of the process that starts
it (a long pytest run is 300 MB; os.wait4 on a direct child reported that, not the child's own)."""

import sys

from bench.child_rss import run_measured


def test_it_measures_a_small_child_of_a_big_parent_as_small():
    ballast = bytearray(250 * 1024 * 1024)
    ballast[:: 4096] = b"\x01" * len(ballast[:: 4096])  # touch every page: it is resident
    status, out, err, peak_mb = run_measured([sys.executable, "-c", "print('small')"])
    assert (status, out, err) == (0, "small\n", "")
    assert peak_mb < 60, peak_mb
    del ballast


def test_it_measures_what_the_child_itself_holds_and_passes_its_exit_status():
    code = "x = bytearray(120 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096]); raise SystemExit(3)"
    status, _, _, peak_mb = run_measured([sys.executable, "-c", code])
    assert status == 3
    assert 120 <= peak_mb < 180, peak_mb
