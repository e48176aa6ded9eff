"""The WAL shipper (`manage.py ship_wal --follow`, issue 13's 60-s floor from the bucket alone),
as real processes: a cluster of the test's own with archiving (never the shared development
server), moto's S3 server, the shipper as a subprocess. A switched segment is in the bucket,
encrypted, within seconds (not the minute of the schedule); after a SIGKILL of the postmaster a
restore from the bucket alone has what was committed before it; an S3 outage is survived,
reported, and caught up; TERM stops it with exit 0."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from operations import crypto, wal_archive
from tests.operations.pitr_cluster import cluster as cluster  # noqa: F401  (fixture)
from tests.operations.pitr_cluster import free_port
from tests.operations.s3server import object_keys
from tests.operations.s3server import offsite as offsite  # noqa: F401  (fixtures)
from tests.operations.s3server import s3_endpoint as s3_endpoint  # noqa: F401

POLL = "0.5"


@pytest.fixture
def pitr_env(cluster, monkeypatch):
    monkeypatch.setenv("WAL_ARCHIVE_DIR", str(cluster["archive"]))
    monkeypatch.setenv("PITR_BASE_DIR", str(cluster["root"] / "bases"))
    return cluster


class Shipper:
    """`manage.py ship_wal --follow` in a process of its own, its stderr in a file."""

    def __init__(self, log: Path, **env: str) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "ship_wal", "--follow"],
            cwd=settings.BASE_DIR,
            env={**os.environ, "WAL_SHIP_POLL_SECONDS": POLL, **env},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, needle: str, timeout: float = 60) -> float:
        t0 = time.monotonic()
        while needle not in self.text():
            assert self.proc.poll() is None, f"shipper exited {self.proc.returncode}: {self.text()}"
            assert time.monotonic() - t0 < timeout, f"no {needle!r} in: {self.text()}"
            time.sleep(0.1)
        return time.monotonic() - t0

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def _switch(conn) -> str:
    return conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]


def _wait_in_bucket(client, key: str, timeout: float) -> float:
    t0 = time.monotonic()
    while key not in object_keys(client):
        assert time.monotonic() - t0 < timeout, f"{key} not in the bucket after {timeout} s"
        time.sleep(0.1)
    return time.monotonic() - t0


@pytest.mark.django_db
def test_it_ships_a_switched_segment_within_seconds_and_the_bucket_alone_restores_it(
    pitr_env, offsite, tmp_path
):
    root, conninfo = pitr_env["root"], pitr_env["conninfo"]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE entries (id serial PRIMARY KEY, qty numeric NOT NULL, note text)")
        wal_archive.base_backup_create(conninfo=conninfo)  # its copy in the bucket too
        shipper = Shipper(tmp_path / "ship.log")
        try:
            shipper.wait_for(f"shipping {pitr_env['archive']} to s3://{offsite.bucket}/inv/wal/")
            for n in range(5):
                conn.execute("INSERT INTO entries (qty, note) VALUES (%s, 'shipped')", [n + 1])
            wal = _switch(conn)
            # No schedule runs here: only the shipper copies it, well within the minute.
            seconds = _wait_in_bucket(offsite, f"inv/wal/{wal}.enc", timeout=15)
            shipper.wait_for(f"{wal} copied to s3://{offsite.bucket}/inv/wal/{wal}.enc")
            stored = offsite.get_object(Bucket=offsite.bucket, Key=f"inv/wal/{wal}.enc")["Body"].read()
            assert stored[:8] == crypto.MAGIC
            assert (pitr_env["archive"] / ".offsite" / wal).exists()  # marked only once verified
            print(f"switched segment in the bucket after {seconds:.1f} s")
            assert seconds < 10
            # The failure: the postmaster SIGKILLed, the machine lost with its archive.
            pid = int((root / "primary" / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        finally:
            assert shipper.stop() == 0, shipper.text()
    assert shipper.text().rstrip().endswith("stopped")
    pitr_env["started"].remove(root / "primary")
    shutil.rmtree(pitr_env["archive"])
    shutil.rmtree(root / "bases")
    port = free_port()
    restore = subprocess.run(
        [sys.executable, "manage.py", "pitr_restore", "--from-s3", "--to", "latest",
         "--datadir", str(root / "restored"), "--port", str(port)],
        cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=300,
    )
    if (root / "restored").exists():
        pitr_env["started"].append(root / "restored")
    assert restore.returncode == 0, restore.stderr
    with psycopg.connect(f"host={root / 'restored'} port={port} dbname=postgres user=postgres") as conn:
        rows = conn.execute("SELECT qty, note FROM entries ORDER BY id").fetchall()
    assert [(int(q), note) for q, note in rows] == [(n + 1, "shipped") for n in range(5)]


class Proxy:
    """A TCP forwarder to moto that can be switched off (nothing listens: connection refused,
    as an unreachable S3) and on again on the same port."""

    def __init__(self, target: str) -> None:
        self.target = int(target.rsplit(":", 1)[1])
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.open: list[socket.socket] = []

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        listener.settimeout(0.2)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        self.listener, listener = None, self.listener
        listener.close()
        for sock in self.open:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while self.listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (a, b):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.mark.django_db
def test_it_survives_an_s3_outage_reports_it_and_catches_up(
    pitr_env, offsite, s3_endpoint, tmp_path, monkeypatch
):
    from operations.backups import newest_backup_status
    from operations.models import BackupRecord

    proxy = Proxy(s3_endpoint)
    proxy.up()
    shipper = Shipper(tmp_path / "ship.log", BACKUP_S3_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}")
    try:
        with psycopg.connect(pitr_env["conninfo"], autocommit=True) as conn:
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("INSERT INTO t VALUES (1)")
            first = _switch(conn)
            _wait_in_bucket(offsite, f"inv/wal/{first}.enc", timeout=15)
            proxy.down()
            conn.execute("INSERT INTO t VALUES (2)")
            second = _switch(conn)
            shipper.wait_for("upload failed, retrying in")
            assert f"inv/wal/{second}.enc" not in object_keys(offsite)
            assert not (pitr_env["archive"] / ".offsite" / second).exists()
            assert (pitr_env["archive"] / ".offsite" / ".error").exists()
            time.sleep(2)  # a few retries: it keeps running
            assert shipper.proc.poll() is None
            # The monitor and /health say so (the file waits longer than the limit set here).
            monkeypatch.setenv("WAL_OFFSITE_MAX_LAG_SECONDS", "1")
            ok, message = wal_archive.wal_offsite_status()
            assert not ok and "WAL off-site copy is" in message and "archived file(s) not copied" in message
            assert f"127.0.0.1:{proxy.port}" in message  # the upload error, said with it
            BackupRecord.objects.create(file_name="x.dump", status="ok", started_at=_now())
            health = newest_backup_status()
            assert not health["ok"] and not health["wal_offsite"]["ok"]
            assert "WAL off-site copy is" in health["message"]
            proxy.up()
            seconds = _wait_in_bucket(offsite, f"inv/wal/{second}.enc", timeout=30)
            shipper.wait_for("S3 reachable again: caught up")
            print(f"caught up {seconds:.1f} s after S3 came back")
        assert (pitr_env["archive"] / ".offsite" / second).exists()
        assert not (pitr_env["archive"] / ".offsite" / ".error").exists()
        assert wal_archive.wal_offsite_status()[0]
    finally:
        code = shipper.stop()
        if proxy.listener is not None:
            proxy.down()
    assert code == 0, shipper.text()


def _now():
    from django.utils import timezone

    return timezone.now()


def test_it_idles_without_a_bucket_and_stops_on_term_with_exit_0(tmp_path, monkeypatch):
    monkeypatch.delenv("BACKUP_S3_BUCKET", raising=False)
    shipper = Shipper(tmp_path / "ship.log", WAL_ARCHIVE_DIR=str(tmp_path / "archive"))
    shipper.wait_for("idle: no bucket configured (BACKUP_S3_BUCKET unset)")
    time.sleep(1.5)  # several polls: one line, no noise
    assert shipper.proc.poll() is None and shipper.text().count("idle:") == 1
    assert shipper.stop() == 0
    assert shipper.text().rstrip().endswith("stopped")


# --- started beside the worker: make run (scripts/run_dev.py) and make serve (deploy/serve.py) ---


def _child(parent: int, needle: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and needle in cmdline:
            return int(entry.name)
    return None


def _wait(predicate, seconds: float, what: str, server):
    deadline = time.monotonic() + seconds
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}\n{server.text}"
        time.sleep(0.2)
    return value


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.django_db
def test_it_ships_under_make_run_restarts_a_killed_shipper_and_stops_it_on_ctrl_c(pitr_env, offsite):
    from tests.server_processes import PY, Server, server_env

    port = free_port()
    env = server_env(DEBUG="true", PORT=str(port), WAL_SHIP_POLL_SECONDS=POLL)
    server = Server([PY, "scripts/run_dev.py"], env, port)
    try:
        first = _wait(lambda: _child(server.proc.pid, "ship_wal --follow"), 60, "a shipper", server)
        _wait(lambda: f"to s3://{offsite.bucket}/inv/wal/" in server.text, 60, "shipping", server)
        with psycopg.connect(pitr_env["conninfo"], autocommit=True) as conn:
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("INSERT INTO t VALUES (1)")
            wal = _switch(conn)
        _wait_in_bucket(offsite, f"inv/wal/{wal}.enc", timeout=15)
        os.killpg(first, signal.SIGKILL)
        second = _wait(
            lambda: (c := _child(server.proc.pid, "ship_wal --follow")) != first and c,
            30, "a new shipper", server,
        )
        assert f"WAL shipper (pid {first}) exited with -9" in server.text
        server.proc.send_signal(signal.SIGINT)  # Ctrl-C: web, worker and shipper stop
        assert server.proc.wait(timeout=30) == 0, server.text
        _wait(lambda: _gone(second), 10, "the shipper stopped", server)
    finally:
        server.stop()


@pytest.mark.django_db
def test_it_starts_the_shipper_under_make_serve_and_stops_it_with_the_rest(tmp_path, monkeypatch):
    from tests.server_processes import PRODUCTION, PY, Server, server_env

    monkeypatch.delenv("BACKUP_S3_BUCKET", raising=False)
    port = free_port()
    env = server_env(**PRODUCTION, PORT=str(port), WEB_CONCURRENCY="1", WAL_ARCHIVE_DIR=str(tmp_path))
    server = Server([PY, "deploy/serve.py"], env, port)
    try:
        server.wait_ready()
        shipper = _wait(lambda: _child(server.proc.pid, "ship_wal --follow"), 60, "a shipper", server)
        _wait(lambda: "idle: no bucket configured" in server.text, 60, "the shipper's line", server)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0, server.text
        assert _gone(shipper)
    finally:
        server.stop()
    assert "[ship_wal" in server.text and "] stopped" in server.text
