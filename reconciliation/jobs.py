"""Reconciliation's job kind, registered with operations (operations/registry.py) when the app is
ready (reconciliation/apps.py): the page's "Run now", the runbook and reconcile_balances run it."""

from __future__ import annotations

from django_q.models import Schedule
from django_tenants.utils import schema_context

from operations.models import JobRun
from operations.registry import JobResult, Progress, job_kind_register
from operations.schedules import ScheduleSpec, schedule_register
from reconciliation.services import reconciliation_run, reconciliation_summary


def summary_line(r: dict) -> str:
    """One run's figures, the same on the page, in the task's result and on the console."""
    dry = r.get("dry_run", False)
    would = " (would be)" if dry else ""
    return (
        f"{r['mode']}{' (dry run)' if dry else ''}: {r['keys_checked']} keys checked, "
        f"{r['differences']} differences, {r['auto_corrected']} auto-corrected, "
        f"{r['opened']} opened{would} ({r['opened']} new, {r['still_open']} still open, "
        f"{r['kept_dismissed']} kept dismissed, {r['auto_closed']} auto-closed), "
        f"{r['seconds']:.2f}s"
    )


@job_kind_register(
    JobRun.Kind.RECONCILE, options={"mode": "full", "dry_run": False, "triggered_by": ""}
)
def reconcile(
    *,
    schema_name: str,
    progress: Progress,
    requested_by: str = "",
    mode: str = "full",
    dry_run: bool = False,
    triggered_by: str = "",
) -> JobResult:
    """`triggered_by` defaults to the page's user ("user:<name>")."""
    with schema_context(schema_name):
        run = reconciliation_run(
            mode=mode,
            dry_run=dry_run,
            triggered_by=triggered_by or f"user:{requested_by}",
            progress=progress,
        )
        figures = reconciliation_summary(run)
    return JobResult(summary=summary_line(figures), data=figures)


# Incremental every day at 02:00, full on Sundays (the task decides from the date).
schedule_register(
    ScheduleSpec(
        "reconcile balances",
        "reconciliation.tasks.reconcile_all_scheduled",
        Schedule.CRON,
        cron="0 2 * * *",
    )
)
