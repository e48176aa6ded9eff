"""Embedded PostgreSQL for development and tests, used when DATABASE_URL is unset.

The server comes from the `pgserver` wheel (PostgreSQL 16 plus its client tools), keeps its data
in `.pgdata/` of the checkout and is left running when the process that started it exits, so
that `make run`, the worker, the tests and `psql` all share one server and later processes
start instantly by reusing it. `make db-stop` stops it.

WAL archiving (point-in-time recovery, operations/wal_archive.py) is on unless
EMBEDDED_WAL_ARCHIVE=0: wal_level=replica, archive_mode=on, archive_timeout=30s, and an
archive_command that copies each finished segment into WAL_ARCHIVE_DIR (default var/wal-archive,
outside .pgdata so that losing the data directory does not lose the archive). A new data
directory gets it at its first start; a running server that has it off gets it from `make setup`
(`python -m config.embedded_db --wal-archive`), which restarts the server once, and says so,
only when archive_mode or wal_level must change (another archive_timeout, e.g. the 60 s of
before, is only reloaded): every other process only reuses the server.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import warnings
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PGDATA = Path(os.environ.get("EMBEDDED_PGDATA", BASE_DIR / ".pgdata"))
DEFAULT_DB_NAME = "inventory"
# Read by operations/wal_archive.py too (same variable, same default).
WAL_ARCHIVE_DIR = Path(os.environ.get("WAL_ARCHIVE_DIR", BASE_DIR / "var" / "wal-archive"))
# archive_mode and wal_level take effect only at a server start; the others on a reload.
RESTART_SETTINGS = ("wal_level", "archive_mode")

log = logging.getLogger(__name__)
# platformdirs (imported with pgserver) warns whenever XDG_RUNTIME_DIR is unset (root shells, CI).
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def pg_bin_dir() -> Path:
    """Folder of the client tools (psql, pg_dump, pg_restore, pgbench) matched to the server."""
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _server():
    import pgserver

    # pgserver logs at INFO through the root logger on every start; keep the console quiet.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    return pgserver.get_server(PGDATA, cleanup_mode=None)


def wal_archive_enabled() -> bool:
    return os.environ.get("EMBEDDED_WAL_ARCHIVE", "1").strip().lower() not in (
        "0",
        "false",
        "no",
        "off",
    )


def archive_command(folder: Path) -> str:
    """Copy %p into `folder` as %f via a temporary name, synced, then renamed: a file with a
    segment's name is always complete. An existing identical file counts as archived (a crash
    after the rename, before the server noted it); an existing different one is a failure."""
    final, tmp = shlex.quote(f"{folder}/%f"), shlex.quote(f"{folder}/%f.tmp")
    return (
        f"test -f {final} && cmp -s %p {final} || "
        f"(test ! -f {final} && cp %p {tmp} && sync {tmp} && mv {tmp} {final})"
    )


def wal_settings(folder: Path = WAL_ARCHIVE_DIR) -> dict[str, str]:
    """What the server runs with when archiving is on (values as SHOW prints them)."""
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        # A segment at least every 30 s with writes; the shipper (ship_wal --follow) copies it
        # off-site within seconds: the bucket is < 60 s behind (docs/OPERATIONS.md).
        "archive_timeout": "30s",
        "archive_command": archive_command(folder),
    }


def _archive_folder_ready(folder: Path, user: str | None) -> None:
    """The folder exists and the server's user (pgserver when we are root) may write to it."""
    folder.mkdir(parents=True, exist_ok=True)
    if user:
        import shutil

        shutil.chown(folder, user)


def wal_archive_ensure(conn, *, restart: bool, user: str | None = None) -> str:
    """Bring the running server's WAL settings to what EMBEDDED_WAL_ARCHIVE asks (ALTER SYSTEM,
    reload). Returns "ok" (nothing to change), "reloaded", "restart needed" (`restart` False and
    archive_mode/wal_level differ) or "restarted"."""
    want = wal_settings() if wal_archive_enabled() else {"archive_mode": "off"}
    if wal_archive_enabled():
        _archive_folder_ready(WAL_ARCHIVE_DIR, user)
    have = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in want}
    changed = [name for name, value in want.items() if have[name] != value]
    if not changed:
        return "ok"
    if wal_archive_enabled():
        for name in changed:
            conn.execute(f"ALTER SYSTEM SET {name} = {_literal(want[name])}")
    else:  # opt-out: back to the server's defaults (archive_mode off)
        for name in wal_settings():
            conn.execute(f"ALTER SYSTEM RESET {name}")
    conn.execute("SELECT pg_reload_conf()")
    if not any(name in RESTART_SETTINGS for name in changed):
        return "reloaded"
    if not restart:
        return "restart needed"
    _restart()
    return "restarted"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _restart() -> None:
    """pg_ctl restart with the options of the running server (postmaster.opts: its socket),
    under pgserver's inter-process lock, so a process starting meanwhile waits, then reuses it."""
    from pgserver._commands import pg_ctl
    from pgserver.postgres_server import PostgresServer

    with PostgresServer._lock:
        pg_ctl(
            ["-w", "-l", str(PGDATA / "log"), "restart", "-m", "fast"],
            pgdata=PGDATA,
            user=_system_user(),
            timeout=120,
        )


def _system_user() -> str | None:
    return "pgserver" if os.geteuid() == 0 else None


def embedded_database_url(db_name: str = DEFAULT_DB_NAME) -> str:
    """Start (or reuse) the embedded server and make sure `db_name` exists; return its URL. A
    data directory created here gets WAL archiving before anyone else uses it."""
    import psycopg

    fresh = not (PGDATA / "PG_VERSION").exists()
    server = _server()
    admin_url = server.get_uri("postgres")
    if fresh and wal_archive_enabled():
        with psycopg.connect(admin_url, autocommit=True) as conn:
            wal_archive_ensure(conn, restart=True, user=_system_user())
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{db_name}"')
    return server.get_uri(database=db_name)


def stop() -> bool:
    """Stop the embedded server if it runs. Returns whether one was running."""
    from pgserver._commands import pg_ctl
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(PGDATA) if PGDATA.exists() else None
    if info is None or not info.is_running():
        return False
    user = "pgserver" if os.geteuid() == 0 else None
    pg_ctl(["-w", "stop", "-m", "fast"], pgdata=PGDATA, user=user)
    return True


def main(argv: list[str]) -> int:
    """`make setup`'s step: `python -m config.embedded_db --wal-archive`."""
    if argv != ["--wal-archive"]:
        print("usage: python -m config.embedded_db --wal-archive", file=sys.stderr)
        return 2
    from dotenv import load_dotenv

    load_dotenv(BASE_DIR / ".env", override=False)  # as the settings do
    if os.environ.get("DATABASE_URL"):
        print("WAL archiving: DATABASE_URL is set, the server's own (docs/OPERATIONS.md)")
        return 0
    import psycopg

    with psycopg.connect(embedded_database_url("postgres"), autocommit=True) as conn:
        running = conn.execute(
            "SELECT count(*) - 1 FROM pg_stat_activity WHERE backend_type = 'client backend'"
        ).fetchone()[0]
        state = wal_archive_ensure(conn, restart=False, user=_system_user())
    if state == "restart needed":
        on = "on" if wal_archive_enabled() else "off"
        print(
            f"WAL archiving: restarting the embedded PostgreSQL once to turn archive_mode {on} "
            f"({running} other connection(s) will be cut; they reconnect)"
        )
        _restart()
        state = "restarted"
    where = f" into {WAL_ARCHIVE_DIR}" if wal_archive_enabled() else ""
    print(f"WAL archiving {'on' if wal_archive_enabled() else 'off'}{where} ({state})")
    # Only base backups clean the archive (the worker's daily schedule); a whole test run adds
    # about 1.8 GB (docs/OPERATIONS.md), so say when it has grown.
    size = (
        sum(p.stat().st_size for p in WAL_ARCHIVE_DIR.glob("0*")) if WAL_ARCHIVE_DIR.is_dir() else 0
    )
    if size > 4 << 30:
        print(
            f"WAL archive: {size / (1 << 30):.1f} GB in {WAL_ARCHIVE_DIR}; a base backup "
            "(manage.py pitr_base_backup, or the worker's schedule) removes what it makes old"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
