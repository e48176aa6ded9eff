"""New organisations' schemas copied from a migrated template schema instead of replaying every
tenant migration (about 1.2 s each; a copy takes a few tens of milliseconds).

The template (settings.TENANT_BASE_SCHEMA, "_tenant_template": a leading underscore no slug can
produce) is an ordinary schema migrated with `migrate_schemas --schema`. It is current when its
django_migrations rows are exactly the migrations in the code; otherwise `template_refresh` drops
it and migrates a new one, and until that has committed provisioning falls back to migrating.

The copy is pg_dump's own text of the template (every table, column, default, index, constraint,
trigger, function, sequence and its OWNED BY and setval, and the rows: django_migrations) with the
template's name replaced by the new schema's. pg_dump qualifies every name, and a function's
pinned `SET search_path TO '<template>', 'public'` is rewritten like the rest, so the new
organisation's trigger writes its own balances (tests/tenants/test_clone.py compares the catalogs
of a copied and a migrated schema). The text is read once per template per process.
"""

from __future__ import annotations

import os
import re
import subprocess
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction

# Serialises template rebuilds across processes (two provisioning at once after a deploy).
TEMPLATE_LOCK_KEY = 0x7E3D1A7E
_dump_cache: dict[int, str] = {}


def template_schema() -> str:
    return settings.TENANT_BASE_SCHEMA


def _migration_dirs_stamp() -> tuple:
    """The apps' migrations folders and their mtimes: a file added, removed or renamed changes
    its folder's mtime, so a running process notices a new migration (a deploy, another branch)."""
    from django.apps import apps

    stamp = []
    for app in apps.get_app_configs():
        folder = Path(app.path) / "migrations"
        try:
            stamp.append((str(folder), folder.stat().st_mtime_ns))
        except OSError:
            continue
    return tuple(stamp)


def code_migrations() -> frozenset[tuple[str, str]]:
    """Every migration a freshly migrated tenant schema records (all apps: django-tenants records
    the shared apps' migrations in each schema too). Squashed migrations record the ones they
    replace as well."""
    return _code_migrations(_migration_dirs_stamp())


@lru_cache(maxsize=4)
def _code_migrations(stamp: tuple) -> frozenset[tuple[str, str]]:
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    names = set(loader.graph.nodes)
    for key in loader.graph.nodes:
        names.update(loader.graph.nodes[key].replaces or ())
    return frozenset(names)


def _template_oid(cursor) -> int | None:
    cursor.execute(
        "SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %s", [template_schema()]
    )
    row = cursor.fetchone()
    return row[0] if row else None


def template_current() -> int | None:
    """The template's schema oid when it exists and records exactly the code's migrations."""
    with connection.cursor() as cursor:
        oid = _template_oid(cursor)
        if oid is None:
            return None
        cursor.execute(
            "SELECT 1 FROM pg_catalog.pg_class WHERE relnamespace = %s "
            "AND relname = 'django_migrations'",
            [oid],
        )
        if cursor.fetchone() is None:
            return None
        q = connection.ops.quote_name(template_schema())
        cursor.execute(f"SELECT app, name FROM {q}.django_migrations")
        recorded = frozenset(cursor.fetchall())
    return oid if recorded == code_migrations() else None


def template_refresh() -> bool:
    """Make the template current (drop it and migrate a new one) and commit. Must run outside any
    transaction: pg_dump reads the template from its own connection. Returns True if rebuilt."""
    if connection.in_atomic_block:
        raise RuntimeError("template_refresh commits; call it outside a transaction")
    name = template_schema()
    q = connection.ops.quote_name(name)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [TEMPLATE_LOCK_KEY])
        if template_current() is not None:
            return False
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {q} CASCADE")
            cursor.execute(f"CREATE SCHEMA {q}")
        try:
            call_command(
                "migrate_schemas",
                tenant=True,
                schema_name=name,
                interactive=False,
                verbosity=0,
            )
        finally:
            connection.set_schema_to_public()
    _dump_cache.clear()
    return True


def _pg_dump() -> str:
    override = os.environ.get("PG_BIN_DIR")
    if override:
        return str(Path(override) / "pg_dump")
    from pgserver._commands import POSTGRES_BIN_PATH  # the embedded server's client tools

    return str(Path(POSTGRES_BIN_PATH) / "pg_dump")


def _conninfo() -> str:
    params = connection.get_connection_params()
    parts = {k: params.get(k) for k in ("dbname", "host", "port", "user", "password")}
    return " ".join(
        f"{k}='{str(v).replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}'"
        for k, v in parts.items()
        if v
    )


def _template_sql(oid: int) -> str:
    """pg_dump's text of the template with the session-wide SETs made transaction-local."""
    if oid in _dump_cache:
        return _dump_cache[oid]
    result = subprocess.run(
        [
            _pg_dump(),
            "--schema",
            template_schema(),
            "--inserts",
            "--no-owner",  # the copy is owned by whoever provisions, as a migrated schema is
            "--no-comments",
            "--dbname",
            _conninfo(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pg_dump of the template failed: {result.stderr.strip()[:2000]}")
    lines = []
    for line in result.stdout.splitlines():
        if line.startswith("\\"):  # psql meta-commands (\restrict in newer pg_dumps)
            continue
        if line.startswith("SET "):
            line = "SET LOCAL " + line[4:]
        line = line.replace(
            "set_config('search_path', '', false)", "set_config('search_path', '', true)"
        )
        lines.append(line)
    _dump_cache.clear()
    _dump_cache[oid] = "\n".join(lines)
    return _dump_cache[oid]


def schema_clone(schema_name: str) -> bool:
    """Create `schema_name` as a copy of the current template, in the caller's transaction.
    Returns False (nothing done) when the template is missing or not current."""
    oid = template_current()
    if oid is None:
        return False
    sql = _template_sql(oid)
    with connection.cursor() as cursor:
        cursor.execute("SELECT quote_ident(%s)", [schema_name])
        ident = cursor.fetchone()[0]
        sql = re.sub(rf"(?<![\w$]){re.escape(template_schema())}(?![\w$])", ident, sql)
        settings_names = sorted(set(re.findall(r"^SET LOCAL (\w+)", sql, re.M)) | {"search_path"})
        cursor.execute(
            "SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name", [settings_names]
        )
        before = cursor.fetchall()
        cursor.execute(sql)
        for setting, value in before:  # the dump's SETs end here, not at the commit
            cursor.execute("SELECT set_config(%s, %s, true)", [setting, value])
        # Recorded as applied now, as migrating would have (the template's times are older).
        cursor.execute(f"UPDATE {ident}.django_migrations SET applied = now()")
    return True
