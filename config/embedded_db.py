"""Embedded PostgreSQL for development and tests, used when DATABASE_URL is unset.

The server comes from the `pgserver` wheel (PostgreSQL 16 plus its client tools), keeps its data
in `.pgdata/` of the checkout and is left running when the process that started it exits, so
that `make run`, the worker, the tests and `psql` all share one server and later processes
start instantly by reusing it. `make db-stop` stops it.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PGDATA = Path(os.environ.get("EMBEDDED_PGDATA", BASE_DIR / ".pgdata"))
DEFAULT_DB_NAME = "inventory"

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


def embedded_database_url(db_name: str = DEFAULT_DB_NAME) -> str:
    """Start (or reuse) the embedded server and make sure `db_name` exists; return its URL."""
    import psycopg

    server = _server()
    admin_url = server.get_uri("postgres")
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
