"""One organisation at a time: restore its schema from a backup into a new, inactive
organisation `<slug>-restored-<YYYYMMDD>` for inspection, or export its schema on its own.

The schema goes through a scratch database: pg_restore --schema=<old> there, rename it, re-pin
the search_path its functions carry (`SET search_path FROM CURRENT` stored the old name: the
balance trigger would otherwise write into the original organisation's tables), pg_dump it, and
pg_restore that into this database. No other schema is read or written here.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import psycopg
from django.db import connection, transaction
from django.utils import timezone

from operations.backups import _conninfo, backup_dir, pg_tool
from operations.drills import (
    DrillError,
    backup_file_fetch,
    pg_restore,
    scratch_conninfo,
    scratch_create,
    scratch_drop,
)
from operations.models import BackupRecord


def _pg_dump_schema(dbname_conninfo: str, schema: str, target: Path) -> None:
    result = subprocess.run(
        [
            pg_tool("pg_dump"),
            "--format=custom",
            "--no-owner",
            f"--schema={schema}",
            "--file",
            str(target),
            "--dbname",
            dbname_conninfo,
        ],
        capture_output=True,
        text=True,
        timeout=6 * 3600,
    )
    if result.returncode != 0:
        raise DrillError(f"pg_dump failed: {result.stderr.strip()[:1500]}")


def organization_export(*, slug: str, target: Path | None = None) -> Path:
    """pg_dump -Fc of one organisation's schema alone (from the live database)."""
    from tenants.models import Organization

    org = Organization.objects.tenants().get(slug=slug)
    if target is None:
        target = backup_dir() / f"org-{slug}-{timezone.now():%Y%m%dT%H%M%S}Z.dump"
    partial = target.with_name(target.name + ".partial")
    try:
        _pg_dump_schema(_conninfo(), org.schema_name, partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _repin_functions(conn, schema: str) -> int:
    """Functions of `schema` whose stored search_path names another schema: set it to
    `schema, public`. Returns how many were changed."""
    rows = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = %s AND EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%%')",
        [schema],
    ).fetchall()
    for (signature,) in rows:
        conn.execute(f'ALTER FUNCTION {signature} SET search_path = "{schema}", public')
    return len(rows)


def organization_restore(
    *, slug: str, backup: BackupRecord | None = None, new_slug: str | None = None
) -> dict:
    """Restore `slug`'s schema from `backup` (default: the newest good one) into a new inactive
    organisation. Returns what was made."""
    from tenants.models import Domain, Organization
    from tenants.services import (
        organization_domain_for,
        organization_schema_name,
        organization_slug_check,
    )

    source = Organization.objects.tenants().get(slug=slug)
    record = backup or (
        BackupRecord.objects.filter(status=BackupRecord.Status.OK).order_by("-started_at").first()
    )
    if record is None:
        raise DrillError("no backup to restore from")
    if source.schema_name not in record.figures:
        raise DrillError(f"backup {record.file_name} holds no ledger for {slug}")
    new_slug = new_slug or f"{slug}-restored-{timezone.now():%Y%m%d}"
    organization_slug_check(new_slug)  # free slug, free schema
    new_schema = organization_schema_name(new_slug)
    scratch = None
    with tempfile.TemporaryDirectory(prefix="restore-org-", dir=backup_dir()) as workdir:
        path, origin = backup_file_fetch(record, Path(workdir))
        try:
            scratch = scratch_create("orgrestore")
            with psycopg.connect(scratch_conninfo(scratch), autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{source.schema_name}"')  # --schema omits it
            pg_restore(path, scratch, f"--schema={source.schema_name}")
            with psycopg.connect(scratch_conninfo(scratch), autocommit=True) as conn:
                conn.execute(f'ALTER SCHEMA "{source.schema_name}" RENAME TO "{new_schema}"')
                repinned = _repin_functions(conn, new_schema)
            schema_dump = Path(workdir) / "schema.dump"
            _pg_dump_schema(scratch_conninfo(scratch), new_schema, schema_dump)
        finally:
            if scratch is not None:
                scratch_drop(scratch)
        pg_restore(schema_dump, connection.settings_dict["NAME"])
    try:
        with transaction.atomic():
            org = Organization(
                slug=new_slug,
                name=f"{source.name} (restored {record.started_at:%Y-%m-%d %H:%M})",
                schema_name=new_schema,
                is_active=False,
            )
            org.auto_create_schema = False  # the schema is the restored one
            org.save()
            Domain.objects.create(
                domain=organization_domain_for(new_slug), tenant=org, is_primary=True
            )
    except Exception:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{new_schema}" CASCADE')
        raise
    finally:
        connection.set_schema_to_public()
    return {
        "slug": new_slug,
        "schema": new_schema,
        "backup": record.file_name,
        "source": origin,
        "functions_repinned": repinned,
        "figures": record.figures[source.schema_name],
        "summary": f"{slug} from {record.file_name} ({origin}) restored as {new_slug} (inactive)",
    }


