"""The inventory's job kinds, registered with operations (operations/registry.py) when the app is
ready (inventory/apps.py). Each enters its tenant's schema itself: a worker keeps whatever schema
its previous task left on the connection. The page, the task and the commands (backfill_balances,
validate_migration, repair_balances, rollback_balances) all run these."""

from __future__ import annotations

from django.http import QueryDict
from django_q.models import Schedule
from django_tenants.utils import schema_context

from inventory.forms import BalanceFilterForm
from inventory.services.backfill import balances_backfill
from inventory.services.balance_export import balance_export_file, exports_sweep
from inventory.services.repair import balances_repair, balances_rollback
from inventory.services.validation import BalanceObjectsMissing, migration_validate
from operations.models import JobRun
from operations.registry import JobResult, Progress, job_kind_register
from operations.schedules import ScheduleSpec, schedule_register
from tenants.schemas import tenant_schemas

# No ledger or no balance table is a known state with its own hint: one line, no traceback.
KNOWN = (BalanceObjectsMissing,)


@job_kind_register(JobRun.Kind.BACKFILL, options={"chunk_items": 500}, known_errors=KNOWN)
def backfill(*, schema_name: str, progress: Progress, chunk_items: int = 500) -> JobResult:
    tenant_schemas(schema=schema_name)  # refuses an unknown schema
    with schema_context(schema_name):
        result = balances_backfill(chunk_items=chunk_items, progress=progress)
    return JobResult(
        summary=f"{result.ledger_rows} ledger rows read, {result.balance_rows_written} balance "
        f"rows written, {result.balance_rows_removed} removed",
        data=result.as_dict(),
    )


@job_kind_register(JobRun.Kind.VALIDATE, known_errors=KNOWN)
def validate(*, schema_name: str, progress: Progress) -> JobResult:
    tenant_schemas(schema=schema_name)
    with schema_context(schema_name):
        report = migration_validate(schema=schema_name)
    progress(1, 1, "checked")
    return JobResult(
        summary="all checks passed" if report.ok else f"{len(report.failed)} check(s) failed",
        data=report.as_dict(),
        ok=report.ok,
    )


@job_kind_register(JobRun.Kind.REPAIR, known_errors=KNOWN)
def repair(*, schema_name: str, progress: Progress) -> JobResult:
    """The runbook's Repair: put back the current balance objects, then backfill, then check."""
    tenant_schemas(schema=schema_name)
    with schema_context(schema_name):
        result = balances_repair(progress=progress)
        report = migration_validate(schema=schema_name)
    checks = "all checks passed" if report.ok else f"{len(report.failed)} check(s) failed"
    return JobResult(
        summary=f"{result.summary}; {checks}",
        data=result.as_dict() | {"failed": [c.line() for c in report.failed]},
        ok=report.ok,
    )


@job_kind_register(JobRun.Kind.ROLLBACK, known_errors=KNOWN)
def rollback(*, schema_name: str, progress: Progress) -> JobResult:
    """The guide's rollback: its three DROPs; the ledger's guard and txid stay."""
    tenant_schemas(schema=schema_name)
    progress(0, 1, "dropping trigger, function and balance table")
    with schema_context(schema_name):
        dropped = balances_rollback()
    progress(1, 1, "done")
    return JobResult(
        summary="dropped " + (", ".join(dropped) if dropped else "nothing (already gone)"),
        data={"dropped": dropped},
    )


class ExportFilterInvalid(ValueError):
    pass


@job_kind_register(JobRun.Kind.EXPORT, options={"query": ""}, known_errors=(ExportFilterInvalid,))
def export(*, schema_name: str, progress: Progress, query: str = "") -> JobResult:
    """A balance CSV written for download (the page starts it for views too big to stream).
    `query` is the page's filter string, read by the page's form again; the file's name, rows,
    size and SHA-256 are the result, recorded with the run's success in one UPDATE, which is
    what the download checks."""
    tenant_schemas(schema=schema_name)
    form = BalanceFilterForm(QueryDict(query))
    if not form.is_valid():
        raise ExportFilterInvalid(f"bad filter {query!r}: {dict(form.errors)}")
    with schema_context(schema_name):
        written = balance_export_file(
            schema_name=schema_name, query=form.query(), progress=progress
        )
    return JobResult(
        summary=f"{written.rows} rows, {written.bytes} bytes in {written.seconds:.1f} s",
        data=written.as_dict() | {"query": query},
    )


def export_files_sweep() -> list[str]:
    """The hourly schedule: old exports, dead writers' `.part` files and files no succeeded run
    names are removed (inventory/services/balance_export.py)."""
    with schema_context("public"):
        kept = {
            str(result.get("file"))
            for result in JobRun.objects.filter(
                kind=JobRun.Kind.EXPORT, status=JobRun.Status.SUCCEEDED
            ).values_list("result", flat=True)
        }
    return exports_sweep(kept_names=kept)


schedule_register(
    ScheduleSpec(
        "remove old exports", "inventory.jobs.export_files_sweep", Schedule.MINUTES, minutes=60
    )
)
