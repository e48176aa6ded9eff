"""A PostgreSQL cluster of the test's own for the point-in-time tests (initdb from the server's
bin/, archive_mode on, the embedded server's archive_command into its own archive folder), so
that the development server shared by every process is never restarted or reconfigured."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from config.embedded_db import archive_command
from operations import pitr
from operations.backups import pg_tool


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cluster():
    root = Path(f"/tmp/pitr-{os.getpid()}-{time.monotonic_ns()}")  # short: socket paths
    root.mkdir()
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses root: the embedded server's own user
        user = pitr.server_user(root) or "pgserver"
        shutil.chown(root, user)
    archive = root / "archive"
    archive.mkdir()
    if user:
        shutil.chown(archive, user)
    data, port = root / "primary", free_port()
    pitr._run([pg_tool("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"], user=user)
    with (data / "postgresql.conf").open("a") as conf:
        command = archive_command(archive).replace("'", "''")
        conf.write(
            f"port = {port}\nlisten_addresses = ''\nunix_socket_directories = '{root}'\n"
            "wal_level = replica\narchive_mode = on\narchive_timeout = 60\n"
            f"archive_command = '{command}'\n"
        )
    pitr._run([pg_tool("pg_ctl"), "-D", str(data), "-l", str(root / "primary.log"), "-w", "start"], user=user)
    conninfo = f"host={root} port={port} dbname=postgres user=postgres"
    started = [data]
    try:
        yield {"root": root, "archive": archive, "conninfo": conninfo, "user": user, "started": started}
    finally:
        for datadir in started:
            try:
                pitr.stop(datadir, user=user)
            except pitr.PitrError:
                pass
        shutil.rmtree(root, ignore_errors=True)


def wait_archived(conn, wal: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while conn.execute("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver").fetchone()[0] < wal:
        assert time.monotonic() < deadline, "segment not archived"
        time.sleep(0.2)


FIRST_SET = [(n + 1, "first") for n in range(5)]


def entries_first_then_second(conn, base_backup) -> object:
    """The PITR tests' story: a table, a base backup (`base_backup()`), five 'first' entries, a
    noted moment, three 'second' entries, a segment switch waited for in the archive. Returns
    (the noted moment, the base backup's return)."""
    conn.execute("CREATE TABLE entries (id serial PRIMARY KEY, qty numeric NOT NULL, note text)")
    base = base_backup()
    for n in range(5):
        conn.execute("INSERT INTO entries (qty, note) VALUES (%s, 'first')", [n + 1])
    time.sleep(0.2)
    noted = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    time.sleep(0.2)
    for n in range(3):
        conn.execute("INSERT INTO entries (qty, note) VALUES (%s, 'second')", [n + 100])
    wait_archived(conn, conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0])
    return noted, base


def entries_restored(conninfo: str) -> list[tuple[int, str]]:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT qty, note FROM entries ORDER BY id").fetchall()
    return [(int(q), note) for q, note in rows]
