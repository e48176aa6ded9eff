"""django-q2 task entry points, and the platform's own job kinds (backup, migrate).

Tasks without a tenant run in public on purpose: they enter the public schema explicitly, since
a worker keeps whatever schema its previous task left on the connection. The paths
`operations.tasks.worker_heartbeat`, `.backup_database` and `.monitor_backups` are named by
Schedule rows in existing databases (operations/schedules.py): keep them."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from django_tenants.utils import schema_context

from operations.backups import backup_create, backups_monitor
from operations.jobs import JobAlreadyRunning, job_run_create, job_runs_reap
from operations.models import JobRun, WorkerHeartbeat
from operations.registry import JobResult, Progress, job_kind_register, job_run_registered
from tenants.schemas import tenant_schemas

log = logging.getLogger(__name__)


def job_run_task(*, job_id: int) -> dict:
    """The one task every page-started job is queued as (operations.dispatch.job_start)."""
    return job_run_registered(job_id).result


def worker_heartbeat() -> str:
    """Every minute, and whenever a worker process starts (operations.apps): the worker's beat,
    and job runs whose worker died marked interrupted."""
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        now = timezone.now()
        WorkerHeartbeat.objects.update_or_create(
            cluster=settings.Q_CLUSTER["name"], defaults={"beat_at": now}
        )
        job_runs_reap()
    return now.isoformat()


def backup_database(job_id: int | None = None) -> dict:
    """The schedule's backup, recorded like a backup started from a page. (With a job id: a
    page's backup queued before job_run_task existed.)"""
    if job_id is not None:
        return job_run_registered(job_id).result
    try:
        job_id = job_run_create(kind=JobRun.Kind.BACKUP, requested_by="schedule").id
    except JobAlreadyRunning as err:
        log.info("scheduled backup skipped: %s", err)
        return {"skipped": str(err)}
    return job_run_registered(job_id).result


def monitor_backups() -> dict:
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        result = backups_monitor()
    if not result.ok:
        # A failed task shows up in django-q2's failed list (and its admin) as well as in the log.
        raise RuntimeError(f"backup monitor: {result.message}")
    return {"ok": True, "message": result.message}


# --- the platform's job kinds --------------------------------------------------------------------


@job_kind_register(JobRun.Kind.BACKUP)
def backup(*, schema_name: str, progress: Progress) -> JobResult:
    """The whole database (every schema); `schema_name` only records which runbook asked."""
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        record = backup_create(progress=progress)
    return JobResult(
        summary=f"backup {record.file_name}: {record.size_bytes} bytes, "
        f"sha256 {record.sha256[:16]}…, {record.duration_seconds:.2f}s",
        data={
            "file": record.file_name,
            "size_bytes": record.size_bytes,
            "sha256": record.sha256,
            "seconds": record.duration_seconds,
        },
    )


@job_kind_register(JobRun.Kind.MIGRATE)
def migrate(*, schema_name: str, progress: Progress) -> JobResult:
    """The runbook's 'apply migrations': migrate_schemas for one tenant schema."""
    from operations.health import pending_migrations_by_schema

    tenant_schemas(schema=schema_name)  # refuses an unknown schema
    progress(0, 1, "migrating all apps")
    call_command("migrate_schemas", schema_name=schema_name, interactive=False, verbosity=0)
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        pending = pending_migrations_by_schema([schema_name])[schema_name]
    progress(1, 1, "done")
    return JobResult(
        summary="all migrations applied"
        if not pending
        else f"{len(pending)} migration(s) not applied",
        data={"pending": pending},
        ok=not pending,
    )
