"""Point-in-time recovery (issue 13.4) on a PostgreSQL cluster of the test's own (initdb from
the server's bin/, archive_mode on, its own archive_command): post, note the time, post more,
restore to the noted time into a new data directory on another port, find exactly the first
set; the archiver check fails when archiving fails."""

from __future__ import annotations

import time

import psycopg

from operations import pitr
from tests.operations.pitr_cluster import FIRST_SET, entries_first_then_second, entries_restored
from tests.operations.pitr_cluster import cluster as cluster  # noqa: F401  (fixture)
from tests.operations.pitr_cluster import free_port as _free_port


def test_it_restores_to_a_point_in_time_and_finds_exactly_the_first_set(cluster):
    user, root = cluster["user"], cluster["root"]
    with psycopg.connect(cluster["conninfo"], autocommit=True) as conn:
        noted, base = entries_first_then_second(
            conn, lambda: pitr.base_backup(cluster["conninfo"], root / "base", user=user)
        )
        status = pitr.archiver_check(conn)
        assert status.ok and status.archived_count >= 1, status.message
    restored_dir = root / "restored"
    t0 = time.monotonic()
    conninfo = pitr.restore_to_time(
        base=base, archive=cluster["archive"], target_time=noted.isoformat(),
        datadir=restored_dir, port=_free_port(), socket_dir=root, user=user,
    )
    cluster["started"].append(restored_dir)
    seconds = time.monotonic() - t0
    assert entries_restored(conninfo) == FIRST_SET
    assert seconds < 60
    print(f"point-in-time restore: {seconds:.1f}s")


def test_the_archiver_check_fails_when_archiving_fails(cluster, db, monkeypatch):
    with psycopg.connect(cluster["conninfo"], autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET archive_command = 'false'")
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 30
        while conn.execute("SELECT failed_count FROM pg_stat_archiver").fetchone()[0] == 0:
            assert time.monotonic() < deadline, "no failed archive recorded"
            time.sleep(0.2)
        status = pitr.archiver_check(conn)
    assert not status.ok and "WAL archiving is failing" in status.message and status.failed_count >= 1
    # The backup monitor's view of it (/health): this cluster stands in for the database's server.
    from django.utils import timezone

    from operations import backups
    from operations.models import BackupRecord

    BackupRecord.objects.create(file_name="x.dump", status="ok", started_at=timezone.now())
    monkeypatch.setattr(backups, "_archiver_connection", lambda: psycopg.connect(cluster["conninfo"]))
    health = backups.newest_backup_status()
    assert not health["ok"] and not health["wal_archiving"]["ok"]
    assert "WAL archiving is failing" in health["message"]
