"""Start a long job from a page: record a JobRun, queue its task, return the run to poll.

Every kind is queued as the same task, `operations.tasks.job_run_task(job_id=...)`, which runs
the function the kind's app registered (operations/registry.py) with the options kept on the
run. So this module names no other app, and a restart runs with the options of the first start.

A second start of the same kind for the same schema while one is queued or running queues
nothing: the run already under way comes back with `refused = True`, so the page follows it and
says why nothing new started (and can answer 409)."""

from __future__ import annotations

from django.utils import timezone
from django_q.tasks import async_task

from operations.jobs import JobAlreadyRunning, job_run_create
from operations.models import JobRun
from operations.registry import job_kind

TASK = "operations.tasks.job_run_task"


def job_start(*, kind: str, schema_name: str = "", requested_by: str = "", **kwargs) -> JobRun:
    params = job_kind(kind).params(kwargs)  # ValueError: unknown kind; TypeError: unknown option
    try:
        job = job_run_create(
            kind=kind, schema_name=schema_name, requested_by=requested_by, params=params
        )
    except JobAlreadyRunning as err:
        err.job.refused = True
        err.job.refusal = str(err)
        return err.job
    try:
        task_id = async_task(TASK, job_id=job.id, task_name=f"{kind} job {job.id}")
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
