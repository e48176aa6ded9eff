"""Job runs: a record per long job that pages poll for progress and outcome.

`job_run_execute` is the one wrapper every task uses: it marks the run started, passes a
progress callback to the service, and records success or the error. Progress writes go through
their own autocommit statements, so a page sees them while the job's own transactions run.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from operations.models import JobRun

log = logging.getLogger(__name__)


def job_run_create(*, kind: str, schema_name: str = "", requested_by: str = "") -> JobRun:
    with schema_context("public"):
        return JobRun.objects.create(kind=kind, schema_name=schema_name, requested_by=requested_by)


def _update(job_id: int, **fields) -> None:
    # Written on the public table by name; safe whatever schema the job is working in.
    JobRun.objects.filter(pk=job_id).update(**fields)


def job_run_execute(job_id: int, work: Callable[[Callable[[int, int, str], None]], dict]) -> JobRun:
    """Run `work(progress)` for the job and record the outcome. Errors are recorded, then re-raised."""
    _update(
        job_id, status=JobRun.Status.RUNNING, started_at=timezone.now(), error="", message="started"
    )

    def progress(done: int, total: int, message: str = "") -> None:
        _update(job_id, done=done, total=total, message=message[:500])

    try:
        result = work(progress) or {}
    except Exception as err:
        log.exception("job %s failed in schema %s", job_id, connection.schema_name)
        _update(
            job_id,
            status=JobRun.Status.FAILED,
            finished_at=timezone.now(),
            error="".join(traceback.format_exception_only(err)).strip()[:5000],
            message="failed",
        )
        raise
    _update(
        job_id,
        status=JobRun.Status.SUCCEEDED,
        finished_at=timezone.now(),
        result=result,
        message=str(result.get("summary", "done"))[:500],
    )
    return JobRun.objects.get(pk=job_id)
