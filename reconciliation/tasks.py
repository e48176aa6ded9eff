"""django-q2 entry points of the 02:00 schedule. Every task names its tenant and enters that
schema itself: a worker process keeps whatever schema the previous task left on its connection.
Runs started from a page or the command are JobRuns (reconciliation/jobs.py); these are not."""

from __future__ import annotations

from django.utils import timezone
from django_q.tasks import async_task
from django_tenants.utils import schema_context

from reconciliation.models import ReconciliationRun
from reconciliation.services import reconciliation_run, reconciliation_summary
from tenants.schemas import tenant_schemas


def reconcile_tenant(
    *, schema_name: str, mode: str = "incremental", triggered_by: str = "schedule"
) -> dict:
    """One tenant's scheduled run."""
    with schema_context(schema_name):
        return reconciliation_summary(reconciliation_run(mode=mode, triggered_by=triggered_by))


def scheduled_mode(now=None) -> str:
    """Incremental every day, full on Sundays."""
    now = timezone.localtime(now)
    return ReconciliationRun.Mode.FULL if now.weekday() == 6 else ReconciliationRun.Mode.INCREMENTAL


def reconcile_all_scheduled() -> list[str]:
    """The 02:00 schedule (its path is named by Schedule rows): one task per active tenant,
    each in its own schema."""
    with schema_context("public"):
        mode = scheduled_mode()
        schemas = tenant_schemas()
    for schema in schemas:
        async_task(
            "reconciliation.tasks.reconcile_tenant",
            schema_name=schema,
            mode=mode,
            task_name=f"reconcile {schema} {mode}",
        )
    return schemas
