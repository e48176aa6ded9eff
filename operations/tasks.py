"""django-q2 task entry points for platform-wide jobs. Tasks without a tenant run in public on
purpose: they enter the public schema explicitly, since a worker keeps whatever schema its
previous task left on the connection."""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils import timezone
from django_tenants.utils import schema_context

from operations.backups import backup_create, backups_monitor
from operations.jobs import JobAlreadyRunning, job_run_create, job_run_execute, job_runs_reap
from operations.models import JobRun, WorkerHeartbeat

log = logging.getLogger(__name__)


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


def _backup_summary(record) -> dict:
    return {
        "file": record.file_name,
        "size_bytes": record.size_bytes,
        "sha256": record.sha256,
        "seconds": record.duration_seconds,
        "summary": f"{record.file_name}: {record.size_bytes} bytes",
    }


def backup_job_run(job_id: int) -> JobRun:
    """The backup as a job run, for every door: the page's task, the schedule, the command."""
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        return job_run_execute(
            job_id, lambda progress: _backup_summary(backup_create(progress=progress))
        )


def backup_database(job_id: int | None = None) -> dict:
    if job_id is None:  # the schedule: recorded like a backup started from a page
        try:
            job_id = job_run_create(kind=JobRun.Kind.BACKUP, requested_by="schedule").id
        except JobAlreadyRunning as err:
            log.info("scheduled backup skipped: %s", err)
            return {"skipped": str(err)}
    return backup_job_run(job_id).result


def monitor_backups() -> dict:
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        result = backups_monitor()
    if not result.ok:
        # A failed task shows up in django-q2's failed list (and its admin) as well as in the log.
        raise RuntimeError(f"backup monitor: {result.message}")
    return {"ok": True, "message": result.message}


def _migrate(schema_name: str, job_id: int, *args: str) -> dict:
    from django.core.management import call_command

    from tenants.schemas import tenant_schemas

    def work(progress):
        tenant_schemas(schema=schema_name)  # refuses an unknown schema
        progress(0, 1, "migrating " + " ".join(args or ("all apps",)))
        call_command(
            "migrate_schemas", *args, schema_name=schema_name, interactive=False, verbosity=0
        )
        with schema_context(settings.PUBLIC_SCHEMA_NAME):
            from operations.health import pending_migrations_by_schema

            pending = pending_migrations_by_schema([schema_name])[schema_name]
        progress(1, 1, "done")
        return {
            "pending": pending,
            "summary": "all migrations applied"
            if not pending
            else f"{len(pending)} migration(s) not applied",
        }

    return job_run_execute(job_id, work).result


def migrate_tenant(schema_name: str, job_id: int) -> dict:
    """The runbook's 'apply migrations': migrate_schemas for one tenant schema."""
    return _migrate(schema_name, job_id)


def rollback_tenant(schema_name: str, job_id: int) -> dict:
    """The guide's rollback for one tenant: migrate inventory back to 0001 (drops trigger,
    function and balance table by their reverse SQL)."""
    return _migrate(schema_name, job_id, "inventory", "0001")
