"""Start-up checks that turn a misconfigured deployment into one clear line instead of a
traceback: the settings load, the database answers, and every process's connections fit the
server's `max_connections`.

manage.py runs them for runserver and qcluster (and asks `unreachable_message` when any other
command fails to connect); gunicorn runs `python -m config.startup --production --web-processes N`
from its `on_starting` hook (config/gunicorn.conf.py), in a child process so that the master
never imports the settings (workers import them after the fork, and `kill -HUP` reloads them).
"""

from __future__ import annotations

import argparse
import os
import sys

# Connections of a django-q2 cluster: two per worker (the task's, and the job heartbeat thread's
# own, operations/jobs.py) and these for the sentinel, the pusher (polls the ORM queue) and the
# monitor (saves results). Measured idle: Q_WORKERS + 1; this is the bound while jobs run.
CLUSTER_OVERHEAD = 3
# Left free for what else connects: management commands, backups (pg_dump), psql, migrations.
HEADROOM = 10
# Driver-level options Django understands that are not libpq connection parameters.
_NOT_LIBPQ = {"pool", "server_side_binding", "isolation_level", "assume_role", "cursor_factory"}


class StartupError(Exception):
    """A one-line reason why the process must not start."""


def load_settings():
    """Import the settings; their refusals (ImproperlyConfigured) become a StartupError."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.DATABASES  # noqa: B018 (evaluates the settings module)
    except ImproperlyConfigured as err:
        raise StartupError(str(err)) from None
    return settings


def database_target(db: dict) -> str:
    """host:port (or the socket folder) of a DATABASES entry, for messages."""
    host = db.get("HOST") or (db.get("OPTIONS") or {}).get("host") or "localhost"
    if host.startswith("/"):
        return f"the socket in {host}"
    return f"{host}:{db.get('PORT') or 5432}"


def connect(db: dict, *, timeout: int = 5):
    import psycopg

    options = {k: v for k, v in (db.get("OPTIONS") or {}).items() if k not in _NOT_LIBPQ}
    params = {
        "dbname": db.get("NAME"),
        "user": db.get("USER"),
        "password": db.get("PASSWORD"),
        "host": db.get("HOST"),
        "port": db.get("PORT"),
        "connect_timeout": timeout,
        **options,
    }
    return psycopg.connect(**{k: v for k, v in params.items() if v not in (None, "")}, autocommit=True)


def _reason(err: Exception) -> str:
    # psycopg: 'connection failed: connection to server at "h", port 1 failed: Connection refused'
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    reason = first.rsplit("failed: ", 1)[-1].replace("FATAL:", "").strip()
    return reason or first


def unreachable_message(db: dict | None = None) -> str | None:
    """One line naming the database that cannot be reached, or None when it answers."""
    import psycopg

    db = db or load_settings().DATABASES["default"]
    try:
        with connect(db):
            return None
    except psycopg.OperationalError as err:
        return (
            f"cannot connect to the database at {database_target(db)}: {_reason(err)} "
            "(check DATABASE_URL)"
        )


def connections_per_web_process(settings) -> int:
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    return pool["max_size"] if isinstance(pool, dict) else 1


def connection_budget(settings, *, web_processes: int) -> tuple[int, int, str]:
    """(needed, available, the arithmetic) for `web_processes` web servers plus one cluster."""
    per_process = connections_per_web_process(settings)
    cluster = 2 * settings.Q_CLUSTER["workers"] + CLUSTER_OVERHEAD
    needed = web_processes * per_process + cluster + HEADROOM
    db = settings.DATABASES["default"]
    with connect(db) as conn:
        max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
        superuser = conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()[0]
        reserved = 0
        if not superuser:
            reserved = int(conn.execute("SHOW superuser_reserved_connections").fetchone()[0])
            row = conn.execute(
                "SELECT setting FROM pg_settings WHERE name = 'reserved_connections'"
            ).fetchone()  # PostgreSQL 16+
            reserved += int(row[0]) if row else 0
    available = max_connections - reserved
    arithmetic = (
        f"{web_processes} web process(es) x {per_process} pooled connection(s) "
        f"+ {cluster} for the worker (2 x Q_WORKERS + {CLUSTER_OVERHEAD}) + {HEADROOM} headroom "
        f"= {needed}, of the server's {available} (max_connections {max_connections}"
        + (f" less {reserved} reserved" if reserved else "")
        + ")"
    )
    return needed, available, arithmetic


def check_database(settings, *, web_processes: int = 0) -> str | None:
    """Refuse to start when the database cannot be reached or the connections cannot fit.
    Returns the budget's arithmetic (for the start-up log) when web processes were counted."""
    message = unreachable_message(settings.DATABASES["default"])
    if message:
        raise StartupError(message)
    if not web_processes:
        return None
    import psycopg

    try:
        needed, available, arithmetic = connection_budget(settings, web_processes=web_processes)
    except psycopg.Error as err:  # e.g. a proxy in front that does not pass SHOW through
        return f"not checked ({_reason(err)})"
    if needed > available:
        raise StartupError(
            f"too many database connections: {arithmetic}. Lower WEB_CONCURRENCY or "
            "DB_POOL_MAX_SIZE, or raise the server's max_connections"
        )
    return arithmetic


def check_production(settings) -> None:
    """What `make serve` and gunicorn refuse to start without (README "Production")."""
    if settings.DEBUG:
        raise StartupError(
            "DEBUG is true: gunicorn serves production settings (DEBUG=false); "
            "`make run` is the development server"
        )
    missing = [name for name in ("SECRET_KEY", "ALLOWED_HOSTS", "BASE_DOMAIN") if not os.environ.get(name)]
    if missing:
        raise StartupError(
            f"{', '.join(missing)} not set: production needs SECRET_KEY, ALLOWED_HOSTS and "
            "BASE_DOMAIN in the environment (see .env.example and the README's Production)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.startup", description=__doc__)
    parser.add_argument("--production", action="store_true", help="refuse DEBUG and missing hosts")
    parser.add_argument("--web-processes", type=int, default=0, help="check the connection budget")
    parser.add_argument("--name", default="startup", help="prefix of the message")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if args.production:
            check_production(settings)
        arithmetic = check_database(settings, web_processes=args.web_processes)
    except StartupError as err:
        print(f"{args.name}: {err}", file=sys.stderr)
        return 1
    if arithmetic:
        print(f"{args.name}: database connections: {arithmetic}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
