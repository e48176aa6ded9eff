"""Continuous WAL archiving (issue 13.4), with real processes and clusters of the tests' own
(never the shared development server): the embedded server starts archiving (at its first start,
or from make setup's step with one restart), a failing archive_command fails the monitor, the
archived WAL goes off-site encrypted and verified (moto's S3 server) and is never removed locally
before that, a restore to a point in time from the bucket alone, and pg_receivewal."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from operations import crypto, pitr, wal_archive
from operations.backups import pg_tool
from operations.offsite import OffsiteError, offsite_config
from tests.operations.pitr_cluster import (
    FIRST_SET,
    entries_first_then_second,
    entries_restored,
    free_port,
    wait_archived,
)
from tests.operations.pitr_cluster import cluster as cluster  # noqa: F401  (fixture)
from tests.operations.s3server import object_keys
from tests.operations.s3server import offsite as offsite  # noqa: F401  (fixtures)
from tests.operations.s3server import s3_endpoint as s3_endpoint  # noqa: F401

SEGMENT = 16 * 1024 * 1024


# --- the embedded server (config/embedded_db.py) in processes of its own ----------------------


@pytest.fixture
def embedded(tmp_path):
    root = Path(f"/tmp/walemb-{os.getpid()}-{time.monotonic_ns()}")  # short: socket paths
    root.mkdir()
    env = {
        **os.environ,
        "EMBEDDED_PGDATA": str(root / "pgdata"),
        "WAL_ARCHIVE_DIR": str(root / "archive"),
    }
    env.pop("EMBEDDED_WAL_ARCHIVE", None)
    env.pop("DATABASE_URL", None)  # the embedded server is the subject, even when tests run on another

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, *args], env=env | extra, cwd=settings.BASE_DIR,
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result

    start = "from config.embedded_db import embedded_database_url as u; print(u('postgres'))"
    try:
        yield {"root": root, "run": run, "start": lambda **e: run("-c", start, **e).stdout.split()[-1]}
    finally:
        run("-c", "from config.embedded_db import stop; stop()")
        shutil.rmtree(root, ignore_errors=True)


def _settings(conn) -> tuple:
    return tuple(conn.execute(f"SHOW {n}").fetchone()[0] for n in ("wal_level", "archive_mode", "archive_timeout"))


def _switch_and_wait(conn, archive: Path) -> str:
    conn.execute("CREATE TABLE IF NOT EXISTS t (x int)")
    conn.execute("INSERT INTO t VALUES (1)")
    wal = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
    deadline = time.monotonic() + 30
    while not (archive / wal).exists():
        assert time.monotonic() < deadline, f"{wal} not archived"
        time.sleep(0.2)
    return wal


def test_it_starts_a_new_embedded_server_with_archiving_and_archives_a_switched_segment(embedded):
    url = embedded["start"]()
    archive = embedded["root"] / "archive"
    with psycopg.connect(url, autocommit=True) as conn:
        assert _settings(conn) == ("replica", "on", "30s")
        wal = _switch_and_wait(conn, archive)
    assert (archive / wal).stat().st_size == SEGMENT
    assert not list(archive.glob("*.tmp"))  # copied under a temporary name, then renamed
    # make setup's step finds nothing to change: no restart
    assert "WAL archiving on" in embedded["run"]("-m", "config.embedded_db", "--wal-archive").stdout
    assert "(ok)" in embedded["run"]("-m", "config.embedded_db", "--wal-archive").stdout


def test_it_turns_archiving_on_for_a_running_server_with_one_restart_and_then_none(embedded):
    url = embedded["start"](EMBEDDED_WAL_ARCHIVE="0")
    with psycopg.connect(url, autocommit=True) as conn:
        assert _settings(conn)[1] == "off"
    # Another process starting meanwhile only reuses the server: nothing changes.
    embedded["start"]()
    with psycopg.connect(url, autocommit=True) as conn:
        assert _settings(conn)[1] == "off"
        started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
    out = embedded["run"]("-m", "config.embedded_db", "--wal-archive").stdout
    assert "restarting the embedded PostgreSQL once to turn archive_mode on" in out and "(restarted)" in out
    with psycopg.connect(url, autocommit=True) as conn:
        assert _settings(conn) == ("replica", "on", "30s")
        restarted = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
        assert restarted > started
        _switch_and_wait(conn, embedded["root"] / "archive")
    out = embedded["run"]("-m", "config.embedded_db", "--wal-archive").stdout
    assert "(ok)" in out and "restarting" not in out
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0] == restarted


def test_it_lowers_a_running_servers_60_s_archive_timeout_to_30_s_with_a_reload_not_a_restart(embedded):
    """A server set up before the shipper has archive_timeout = 60s: make setup's step reloads."""
    url = embedded["start"]()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET archive_timeout = '60s'")
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        assert _settings(conn) == ("replica", "on", "1min")
        started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
    out = embedded["run"]("-m", "config.embedded_db", "--wal-archive").stdout
    assert "(reloaded)" in out and "restarting" not in out
    time.sleep(0.5)
    with psycopg.connect(url, autocommit=True) as conn:
        assert _settings(conn) == ("replica", "on", "30s")
        assert conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0] == started
    assert "(ok)" in embedded["run"]("-m", "config.embedded_db", "--wal-archive").stdout


# --- the monitor -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_fails_the_monitor_run_on_a_failing_archive_command(pitr_env, settings, tmp_path, monkeypatch):
    from operations import backups
    from operations.models import BackupCheck

    cluster = pitr_env
    settings.BACKUP_DIR = tmp_path / "backups"
    backups.backup_create()  # a good, readable backup: the monitor gets as far as the WAL
    monkeypatch.setattr(backups, "_archiver_connection", lambda: psycopg.connect(cluster["conninfo"]))
    with psycopg.connect(cluster["conninfo"], autocommit=True) as conn:
        wait_archived(conn, _switch(conn))
        assert backups.backups_monitor().ok
        conn.execute("ALTER SYSTEM SET archive_command = 'false'")
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        _switch(conn)
        deadline = time.monotonic() + 30
        while conn.execute("SELECT failed_count FROM pg_stat_archiver").fetchone()[0] == 0:
            assert time.monotonic() < deadline, "no failed archive recorded"
            time.sleep(0.2)
    result = backups.backups_monitor()
    assert not result.ok and result.message.startswith("WAL archiving is failing: ")
    check = BackupCheck.objects.order_by("-checked_at").first()  # what the backups page lists
    assert not check.ok and check.message == result.message[:500]
    health = backups.newest_backup_status()
    assert not health["ok"] and "WAL archiving is failing" in health["message"]


@pytest.mark.django_db
def test_it_fails_the_monitor_when_the_newest_base_backup_is_too_old(pitr_env, settings, tmp_path, monkeypatch):
    from operations import backups
    from operations.models import BackupCheck

    settings.BACKUP_DIR = tmp_path / "backups"
    backups.backup_create()
    monkeypatch.setattr(backups, "_archiver_connection", lambda: psycopg.connect(pitr_env["conninfo"]))
    with psycopg.connect(pitr_env["conninfo"], autocommit=True) as conn:
        wait_archived(conn, _switch(conn))
    # No base backup yet, archiving on for less than a day: not a failure (a fresh install).
    assert backups.backups_monitor().ok
    # Archiving on for longer than PITR_BASE_MAX_AGE_HOURS with no base backup at all: a failure.
    for name in wal_archive.archived_files(pitr_env["archive"]):
        os.utime(pitr_env["archive"] / name, (time.time() - 27 * 3600,) * 2)
    result = backups.backups_monitor()
    assert not result.ok and result.message.startswith("no base backup in ")
    # A base backup from a month ago (the schedule stopped): too old, on the page and in /health.
    old = Path(os.environ["PITR_BASE_DIR"]) / "base-20261101T004500Z-000000010000000000000001"
    old.mkdir(parents=True)
    monkeypatch.setenv("PITR_BASE_MAX_AGE_HOURS", "48")
    result = backups.backups_monitor()
    assert not result.ok and result.message.startswith(f"newest base backup {old.name} is ")
    assert result.message.endswith("h old (limit 48 h)")
    assert BackupCheck.objects.order_by("-checked_at").first().message == result.message
    health = backups.newest_backup_status()
    assert not health["ok"] and f"newest base backup {old.name} is " in health["message"]
    # The schedule's base backup now: fine again.
    base = wal_archive.base_backup_create(conninfo=pitr_env["conninfo"])
    result = backups.backups_monitor()
    assert result.ok and f"base backup {base['name']} 0.0 h old" in result.message
    assert backups.newest_backup_status()["ok"]


def _switch(conn) -> str:
    conn.execute("CREATE TABLE IF NOT EXISTS t (x int)")
    conn.execute("INSERT INTO t VALUES (1)")
    return conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]


# --- off-site WAL and retention ----------------------------------------------------------------


@pytest.fixture
def pitr_env(cluster, monkeypatch):
    monkeypatch.setenv("WAL_ARCHIVE_DIR", str(cluster["archive"]))
    monkeypatch.setenv("PITR_BASE_DIR", str(cluster["root"] / "bases"))
    monkeypatch.setenv("PITR_BASE_RETENTION", "1")
    return cluster


def _segments(folder: Path) -> list[str]:
    return [n for n in wal_archive.archived_files(folder) if len(n) == 24]


@pytest.mark.django_db
def test_it_copies_wal_off_site_encrypted_and_verified_and_never_removes_an_uncopied_one(
    pitr_env, offsite, monkeypatch
):
    from operations.backups import newest_backup_status
    from operations.models import BackupRecord

    archive, conninfo = pitr_env["archive"], pitr_env["conninfo"]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        wait_archived(conn, _switch(conn))
        wait_archived(conn, _switch(conn))
    old = _segments(archive)
    assert len(old) >= 2
    # The bucket refuses (it does not exist): nothing is marked copied, the error is kept.
    monkeypatch.setenv("BACKUP_S3_BUCKET", "no-such-bucket")
    with pytest.raises(OffsiteError, match="no-such-bucket"):
        wal_archive.wal_upload()
    assert not [n for n in os.listdir(archive / ".offsite") if not n.startswith(".")]
    for name in old:  # and they wait past the limit: the monitor and /health say so
        os.utime(archive / name, (time.time() - 400, time.time() - 400))
    ok, message = wal_archive.wal_offsite_status()
    assert not ok and "WAL off-site copy is" in message and "NoSuchBucket" in message
    BackupRecord.objects.create(file_name="x.dump", status="ok", started_at=django_now())
    health = newest_backup_status()
    assert not health["ok"] and not health["wal_offsite"]["ok"] and "WAL off-site copy is" in health["message"]
    monkeypatch.setenv("BACKUP_S3_BUCKET", offsite.bucket)
    # A base backup now: its retention must not remove the old segments, not copied yet.
    base = wal_archive.base_backup_create(conninfo=conninfo)
    assert base["offsite"] and set(old) <= set(_segments(archive))
    assert [k for k in object_keys(offsite) if "/wal/" in k] == []
    assert {k.rsplit("/", 1)[1] for k in object_keys(offsite) if "/base/" in k} == {
        "base.tar.gz.enc", "pg_wal.tar.gz.enc", "backup_manifest.enc"
    }
    plain = {name: (archive / name).read_bytes() for name in old}
    result = wal_archive.wal_upload()
    assert result["uploaded"] >= len(old) + 1 and result["removed"] == len(old)
    assert wal_archive.wal_offsite_status()[0]
    key = offsite_config().key
    for name in old:
        assert not (archive / name).exists()  # copied and older than the base backup: gone
        stored = offsite.get_object(Bucket=offsite.bucket, Key=f"inv/wal/{name}.enc")["Body"].read()
        assert stored[:8] == crypto.MAGIC and plain[name][:4096] not in stored
        import io

        out = io.BytesIO()
        crypto.decrypt_stream(io.BytesIO(stored), out, key)
        assert out.getvalue() == plain[name]
    # The base backup's own first segment stays (a restore needs it), copied.
    start = base["start_wal"]
    assert (archive / start).exists() and (archive / ".offsite" / start).exists()
    marker = json.loads((archive / ".offsite" / start).read_text())
    head = offsite.head_object(Bucket=offsite.bucket, Key=marker["key"])
    assert head["ContentLength"] == marker["size"] and head["Metadata"]["sha256"] == marker["sha256"]


def django_now():
    from django.utils import timezone

    return timezone.now()


@pytest.mark.django_db
def test_it_restores_to_a_point_in_time_from_the_bucket_alone(pitr_env, offsite):
    root, conninfo, user = pitr_env["root"], pitr_env["conninfo"], pitr_env["user"]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        noted, _ = entries_first_then_second(
            conn, lambda: wal_archive.base_backup_create(conninfo=conninfo)
        )
    wal_archive.wal_upload()
    # The machine is gone: only the bucket is left.
    shutil.rmtree(root / "bases")
    t0 = time.monotonic()
    download = root / "download"
    download.mkdir()
    if user:
        shutil.chown(download, user)
    base, archive = pitr.offsite_fetch(offsite_config(), download)
    fetched = time.monotonic() - t0
    conninfo = pitr.restore_to_time(
        base=base, archive=archive, target_time=noted.isoformat(),
        datadir=root / "restored", port=free_port(), socket_dir=root, user=user,
    )
    pitr_env["started"].append(root / "restored")
    seconds = time.monotonic() - t0
    assert entries_restored(conninfo) == FIRST_SET
    print(f"restore from the bucket: {fetched:.1f}s download, {seconds:.1f}s in all")
    assert seconds < 60


# --- pg_receivewal -----------------------------------------------------------------------------


def test_it_streams_wal_with_pg_receivewal(cluster, tmp_path):
    target = tmp_path / "received"
    target.mkdir()
    proc = subprocess.Popen(
        [pg_tool("pg_receivewal"), "--directory", str(target), "--dbname", cluster["conninfo"], "--no-password"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        with psycopg.connect(cluster["conninfo"], autocommit=True) as conn:
            while not any(p.name.endswith(".partial") for p in target.iterdir()):
                assert proc.poll() is None and time.monotonic() < deadline, "pg_receivewal did not start"
                time.sleep(0.2)
            wal = _switch(conn)
        while not (target / wal).exists():
            assert proc.poll() is None and time.monotonic() < deadline, f"{wal} not received"
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert (target / wal).stat().st_size == SEGMENT


@pytest.mark.django_db
def test_it_refuses_a_restore_that_could_not_replay_the_whole_archive(pitr_env):
    """PostgreSQL takes a WAL file it cannot read for the end of the archive and opens anyway:
    pitr refuses that (a missing segment in the middle; an archive the server may not read)."""
    root, conninfo, user = pitr_env["root"], pitr_env["conninfo"], pitr_env["user"]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        base = wal_archive.base_backup_create(conninfo=conninfo)
        for _ in range(3):
            wait_archived(conn, _switch(conn))
    segments = _segments(pitr_env["archive"])
    holed = root / "holed"
    shutil.copytree(pitr_env["archive"], holed)
    (holed / segments[-2]).unlink()
    if user:
        for path in (holed, *holed.iterdir()):
            shutil.chown(path, user)
    base_path = wal_archive.base_backups()[0]
    assert base_path.name == base["name"]
    with pytest.raises(pitr.PitrError, match=f"before the archive's last segment {segments[-1]}"):
        pitr.restore_to_time(
            base=base_path, archive=holed, target_time=None, datadir=root / "r1",
            port=free_port(), socket_dir=root, user=user,
        )
    pitr_env["started"].append(root / "r1")
    if user:  # as root the server runs as its own user: a root-only folder is unreadable to it
        closed = root / "closed"
        shutil.copytree(pitr_env["archive"], closed)
        closed.chmod(0o700)
        with pytest.raises(pitr.PitrError, match="Permission denied"):
            pitr.restore_to_time(
                base=base_path, archive=closed, target_time=None, datadir=root / "r2",
                port=free_port(), socket_dir=root, user=user,
            )
        pitr_env["started"].append(root / "r2")
    conninfo = pitr.restore_to_time(
        base=base_path, archive=pitr_env["archive"], target_time=None, datadir=root / "r3",
        port=free_port(), socket_dir=root, user=user,
    )
    pitr_env["started"].append(root / "r3")
    with psycopg.connect(conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 3
