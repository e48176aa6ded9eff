"""Start a long job from a page: record a JobRun, queue its task, return the run to poll.

A second start of the same kind for the same schema while one is queued or running queues
nothing: the run already under way comes back with `refused = True`, so the page follows it and
says why nothing new started (and can answer 409)."""

from __future__ import annotations

from django.utils import timezone
from django_q.tasks import async_task

from operations.jobs import JobAlreadyRunning, job_run_create
from operations.models import JobRun

TENANT_JOBS = {
    JobRun.Kind.BACKFILL: "inventory.tasks.backfill_tenant",
    JobRun.Kind.VALIDATE: "inventory.tasks.validate_tenant",
    JobRun.Kind.MIGRATE: "operations.tasks.migrate_tenant",
    JobRun.Kind.ROLLBACK: "inventory.tasks.rollback_tenant",  # the guide's three DROPs only
    JobRun.Kind.REPAIR: "inventory.tasks.repair_tenant",  # put back the current objects, then backfill
}


def _task_for(kind: str, schema_name: str, requested_by: str, kwargs: dict):
    """(function path, params to keep on the run, args given the run's id)."""
    if kind == JobRun.Kind.BACKUP:
        # The whole database is backed up; the schema only records which runbook asked for it.
        return "operations.tasks.backup_database", {}, lambda job_id: (job_id,)
    if kind == JobRun.Kind.RECONCILE:
        mode = kwargs.get("mode", "full")
        return (
            "reconciliation.tasks.reconcile_tenant",
            {"mode": mode},
            lambda job_id: (schema_name, mode, job_id, f"user:{requested_by}"),
        )
    if kind in TENANT_JOBS:
        return TENANT_JOBS[kind], {}, lambda job_id: (schema_name, job_id)
    raise ValueError(f"unknown job kind {kind!r}")


def job_start(*, kind: str, schema_name: str = "", requested_by: str = "", **kwargs) -> JobRun:
    func, params, args = _task_for(kind, schema_name, requested_by, kwargs)
    try:
        job = job_run_create(
            kind=kind, schema_name=schema_name, requested_by=requested_by, params=params
        )
    except JobAlreadyRunning as err:
        err.job.refused = True
        err.job.refusal = str(err)
        return err.job
    try:
        task_id = async_task(func, *args(job.id), task_name=f"{kind} job {job.id}")
    except Exception as err:
        # Not queued: the run must not stay "queued" and block the next start.
        JobRun.objects.filter(pk=job.id, status=JobRun.Status.QUEUED).update(
            status=JobRun.Status.FAILED,
            finished_at=timezone.now(),
            message="not queued",
            error=f"Could not queue the task: {err}"[:5000],
        )
        raise
    JobRun.objects.filter(pk=job.id).update(task_id=task_id or "")
    job.task_id = task_id or ""
    return job
