"""Start a long job from a page: record a JobRun, queue its task, return the run to poll."""

from __future__ import annotations

from django_q.tasks import async_task

from operations.jobs import job_run_create
from operations.models import JobRun

TENANT_JOBS = {
    JobRun.Kind.BACKFILL: "inventory.tasks.backfill_tenant",
    JobRun.Kind.VALIDATE: "inventory.tasks.validate_tenant",
    JobRun.Kind.MIGRATE: "operations.tasks.migrate_tenant",
    JobRun.Kind.ROLLBACK: "operations.tasks.rollback_tenant",
}


def job_start(*, kind: str, schema_name: str = "", requested_by: str = "", **kwargs) -> JobRun:
    if kind == JobRun.Kind.BACKUP:
        # The whole database is backed up; the schema only records which runbook asked for it.
        job = job_run_create(kind=kind, schema_name=schema_name, requested_by=requested_by)
        async_task("operations.tasks.backup_database", job.id, task_name=f"backup job {job.id}")
    elif kind == JobRun.Kind.RECONCILE:
        job = job_run_create(kind=kind, schema_name=schema_name, requested_by=requested_by)
        async_task(
            "reconciliation.tasks.reconcile_tenant",
            schema_name,
            kwargs.get("mode", "full"),
            job.id,
            f"user:{requested_by}",
            task_name=f"reconcile job {job.id}",
        )
    elif kind in TENANT_JOBS:
        job = job_run_create(kind=kind, schema_name=schema_name, requested_by=requested_by)
        async_task(TENANT_JOBS[kind], schema_name, job.id, task_name=f"{kind} job {job.id}")
    else:
        raise ValueError(f"unknown job kind {kind!r}")
    return job
