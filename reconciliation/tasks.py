"""django-q2 entry points. Every task names its tenant and enters that schema itself: a worker
process keeps whatever schema the previous task left on its connection."""

from __future__ import annotations

from django.utils import timezone
from django_q.tasks import async_task
from django_tenants.utils import schema_context

from operations.jobs import job_run_execute
from reconciliation.models import ReconciliationRun
from reconciliation.services import reconciliation_run, reconciliation_summary
from tenants.schemas import tenant_schemas


def reconcile_tenant(
    schema_name: str,
    mode: str = "incremental",
    job_id: int | None = None,
    triggered_by: str = "schedule",
    dry_run: bool = False,
) -> dict:
    """One tenant's run; with a job id (the page's button, the command) it is recorded on that
    JobRun, with progress and the outcome."""
    with schema_context(schema_name):
        if job_id is None:
            run = reconciliation_run(mode=mode, dry_run=dry_run, triggered_by=triggered_by)
            return reconciliation_summary(run)

        def work(progress):
            return reconciliation_summary(
                reconciliation_run(
                    mode=mode, dry_run=dry_run, triggered_by=triggered_by, progress=progress
                )
            )

        return job_run_execute(job_id, work).result


def scheduled_mode(now=None) -> str:
    """Incremental every day, full on Sundays."""
    now = timezone.localtime(now)
    return ReconciliationRun.Mode.FULL if now.weekday() == 6 else ReconciliationRun.Mode.INCREMENTAL


def reconcile_all_scheduled() -> list[str]:
    """The 02:00 schedule: one task per active tenant, each in its own schema."""
    with schema_context("public"):
        mode = scheduled_mode()
        schemas = tenant_schemas()
    for schema in schemas:
        async_task(
            "reconciliation.tasks.reconcile_tenant",
            schema,
            mode,
            None,
            "schedule",
            task_name=f"reconcile {schema} {mode}",
        )
    return schemas
