"""The restore drill: prove the newest backup restores, every day and on a button.

Takes the newest good backup (its off-site copy, downloaded and decrypted, when there is one),
pg_restores it into a scratch database on the same server, runs `validate_migration` there (a
child process whose DATABASE_URL names the scratch database, so the command is the operators'
own), compares each organisation's ledger rows and balance totals with the figures the backup
recorded in its snapshot, drops the scratch database and records a RestoreDrill.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from django.conf import settings
from django.utils import timezone

from operations.backups import _conninfo, _figures, backup_dir, pg_tool
from operations.models import BackupRecord, RestoreDrill

log = logging.getLogger(__name__)


class DrillError(Exception):
    pass


def scratch_conninfo(dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(_conninfo(), dbname=dbname)


def scratch_database_url(dbname: str) -> str:
    """settings.DATABASE_URL with another database name (host, socket, credentials kept)."""
    parts = urlsplit(settings.DATABASE_URL)
    return urlunsplit(parts._replace(path="/" + dbname))


def scratch_create(prefix: str) -> str:
    name = f"{prefix}_{timezone.now():%Y%m%d%H%M%S}_{os.getpid()}"
    with psycopg.connect(scratch_conninfo("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name


def scratch_drop(name: str) -> None:
    with psycopg.connect(scratch_conninfo("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def backup_file_fetch(record: BackupRecord, workdir: Path) -> tuple[Path, str]:
    """The plain dump of `record`: its off-site copy when verified (downloaded and decrypted
    into workdir), else the local file. Checked against the SHA-256 taken at backup time."""
    from operations.offsite import offsite_config, offsite_download

    config = offsite_config()
    if config is not None and record.remote_status == BackupRecord.RemoteStatus.VERIFIED:
        path, source = workdir / record.file_name, "remote"
        offsite_download(record, path, config)
    else:
        path, source = backup_dir() / record.file_name, "local"
        if not path.exists():
            raise DrillError(f"backup file {record.file_name} is missing and has no off-site copy")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != record.sha256:
        raise DrillError(f"{source} copy of {record.file_name} differs from the backup taken")
    return path, source


def pg_restore(path: Path, dbname: str, *extra: str) -> None:
    result = subprocess.run(
        [
            pg_tool("pg_restore"),
            "--no-owner",
            "--exit-on-error",
            *extra,
            "--dbname",
            scratch_conninfo(dbname),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=6 * 3600,
    )
    if result.returncode != 0:
        raise DrillError(f"pg_restore failed: {result.stderr.strip()[:1500]}")


def validate_in(dbname: str) -> dict:
    """manage.py validate_migration --json against the scratch database."""
    # This process's own environment (it started with it), only the database changed.
    env = {**os.environ, "DATABASE_URL": scratch_database_url(dbname)}
    result = subprocess.run(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "validate_migration", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
        cwd=settings.BASE_DIR,
    )
    try:
        report = json.loads(result.stdout)
    except ValueError:
        raise DrillError(
            f"validate_migration gave no report (exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[-1500:]}"
        ) from None
    return report


def _compare(recorded: dict, restored: dict) -> list[str]:
    problems = []
    for schema in sorted(set(recorded) | set(restored)):
        want, got = recorded.get(schema), restored.get(schema)
        if want is None or got is None:
            problems.append(f"{schema}: {'missing from the restore' if got is None else 'not recorded'}")
            continue
        for name in ("ledger_rows", "ledger_qty", "balance_rows", "balance_qty"):
            if str(want.get(name)) != str(got.get(name)):
                problems.append(f"{schema}: {name} {got.get(name)} restored, {want.get(name)} recorded")
    return problems


def restore_drill(*, requested_by: str = "", progress=None) -> RestoreDrill:
    """Run one drill and record it (ok or not). Never raises for a failed drill: the record
    says why; the scratch database is dropped whatever happened."""
    step = progress or (lambda done, total, message: None)
    t0 = time.monotonic()
    drill = RestoreDrill.objects.create(started_at=timezone.now(), requested_by=requested_by)
    scratch = None
    try:
        record = (
            BackupRecord.objects.filter(status=BackupRecord.Status.OK).order_by("-started_at").first()
        )
        if record is None:
            raise DrillError("no backup to restore")
        drill.backup_file = record.file_name
        with tempfile.TemporaryDirectory(prefix="drill-", dir=backup_dir()) as workdir:
            step(0, 4, f"fetching {record.file_name}")
            path, drill.source = backup_file_fetch(record, Path(workdir))
            step(1, 4, "pg_restore into a scratch database")
            scratch = scratch_create("drill")
            pg_restore(path, scratch)
        step(2, 4, "validate_migration in every schema")
        report = validate_in(scratch)
        failed = [s["schema"] for s in report.get("schemas", []) if not s.get("ok")]
        failed += list(report.get("errors") or {})
        step(3, 4, "comparing ledger figures")
        with psycopg.connect(scratch_conninfo(scratch)) as conn, conn.cursor() as cursor:
            restored = _figures(cursor)
        problems = _compare(record.figures, restored)
        drill.details = {
            "schemas": sorted(restored),
            "validation_failed": failed,
            "figures_recorded": record.figures,
            "figures_restored": restored,
            "mismatches": problems,
        }
        if failed:
            problems.insert(0, f"validate_migration failed in {', '.join(sorted(failed))}")
        drill.ok = not problems
        drill.message = (
            "; ".join(problems)
            if problems
            else f"{record.file_name} ({drill.source}) restored: {len(restored)} organisation(s) "
            "valid, ledger rows and balance totals equal"
        )[:500]
    except Exception as err:
        drill.ok, drill.message = False, f"{type(err).__name__}: {err}"[:500]
        log.error("restore drill failed: %s", drill.message)
    finally:
        if scratch is not None:
            try:
                scratch_drop(scratch)
            except Exception as err:  # recorded; the next drill uses another name
                drill.message = (drill.message + f"; scratch database {scratch} not dropped: {err}")[:500]
        drill.finished_at = timezone.now()
        drill.duration_seconds = round(time.monotonic() - t0, 3)
        drill.save()
    step(4, 4, drill.message)
    return drill


def drill_job_run(job_id: int):
    """The drill as a recorded job run (page, schedule, command); a failed drill fails the run."""
    from django_tenants.utils import schema_context

    from operations.jobs import job_run_execute
    from operations.models import JobRun

    def work(progress):
        drill = restore_drill(requested_by=JobRun.objects.get(pk=job_id).requested_by, progress=progress)
        if not drill.ok:
            raise DrillError(drill.message)
        return {
            "drill": drill.id,
            "seconds": drill.duration_seconds,
            "source": drill.source,
            "summary": drill.message[:200],
        }

    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        return job_run_execute(job_id, work)


def restore_drill_task(job_id: int | None = None) -> dict:
    """django-q2 entry point: the schedule (no job yet) and the page's button (its job)."""
    from operations.jobs import JobAlreadyRunning, job_run_create
    from operations.models import JobRun

    if job_id is None:
        try:
            job_id = job_run_create(kind=JobRun.Kind.RESTORE_DRILL, requested_by="schedule").id
        except JobAlreadyRunning as err:
            return {"skipped": str(err)}
    return drill_job_run(job_id).result
