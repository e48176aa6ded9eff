"""django-q2 entry points for tenant inventory jobs; each enters its tenant's schema itself.

The `*_work` factories are the jobs' bodies, shared with the management commands: a command
records a JobRun and runs the same body through `job_run_execute`, so the fleet and the runbook
see a job started from the shell exactly like one started from the page."""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable

from django_tenants.utils import schema_context

from inventory.services.backfill import balances_backfill
from inventory.services.repair import balances_repair, balances_rollback
from inventory.services.validation import BalanceObjectsMissing, migration_validate
from operations.jobs import JobAlreadyRunning, job_run_create, job_run_execute
from operations.models import JobRun
from tenants.schemas import tenant_schemas

REPAIR = JobRun.Kind.REPAIR

Work = Callable[[Callable[[int, int, str], None]], dict]


def backfill_work(schema_name: str, *, chunk_items: int = 500) -> Work:
    def work(progress):
        tenant_schemas(schema=schema_name)  # refuses an unknown schema
        with schema_context(schema_name):
            result = balances_backfill(chunk_items=chunk_items, progress=progress)
        return result.as_dict() | {
            "summary": f"{result.ledger_rows} ledger rows read, "
            f"{result.balance_rows_written} balance rows written"
        }

    return work


def validate_work(schema_name: str) -> Work:
    def work(progress):
        tenant_schemas(schema=schema_name)
        with schema_context(schema_name):
            report = migration_validate(schema=schema_name)
        progress(1, 1, "checked")
        failed = len(report.failed)
        return report.as_dict() | {
            "summary": "all checks passed" if report.ok else f"{failed} check(s) failed"
        }

    return work


def repair_work(schema_name: str) -> Work:
    def work(progress):
        tenant_schemas(schema=schema_name)
        with schema_context(schema_name):
            result = balances_repair(progress=progress)
            report = migration_validate(schema=schema_name)
        return result.as_dict() | {
            "ok": report.ok,
            "failed": [c.line() for c in report.failed],
            "summary": result.summary
            + ("; all checks passed" if report.ok else f"; {len(report.failed)} check(s) failed"),
        }

    return work


def rollback_work(schema_name: str) -> Work:
    def work(progress):
        tenant_schemas(schema=schema_name)
        progress(0, 1, "dropping trigger, function and balance table")
        with schema_context(schema_name):
            dropped = balances_rollback()
        progress(1, 1, "done")
        return {
            "dropped": dropped,
            "summary": "dropped " + (", ".join(dropped) if dropped else "nothing (already gone)"),
        }

    return work


def backfill_tenant(schema_name: str, job_id: int) -> dict:
    return job_run_execute(job_id, backfill_work(schema_name)).result


def validate_tenant(schema_name: str, job_id: int) -> dict:
    return job_run_execute(job_id, validate_work(schema_name)).result


def repair_tenant(schema_name: str, job_id: int) -> dict:
    """The runbook's Repair: put back the current balance objects, then backfill."""
    return job_run_execute(job_id, repair_work(schema_name)).result


def rollback_tenant(schema_name: str, job_id: int) -> dict:
    """The runbook's rollback: the guide's three DROPs; the ledger's guard and txid stay."""
    return job_run_execute(job_id, rollback_work(schema_name)).result


# --- the shell's door: the same bodies, recorded as JobRuns ------------------------------------


class _KnownStateFilter(logging.Filter):
    """A known broken state (no ledger, no balance table) is one line on the console, not a
    traceback; anything unexpected keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], (BalanceObjectsMissing,)):
            record.exc_info = None
            record.exc_text = None
        return True


def cli_requested_by() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:150]
    except (KeyError, OSError):
        return "cli"


def run_recorded(
    *, kind: str, schemas: list[str], work_for: Callable[[str], Work], write, write_error
) -> list[str]:
    """Run `work_for(schema)` for each schema as a recorded JobRun (like a page's job), reporting
    and skipping a schema that fails instead of stopping the run. `write(schema, result)` prints
    a success; returns the schemas that failed."""
    failed = []
    log_filter = _KnownStateFilter()
    jobs_log = logging.getLogger("operations.jobs")
    jobs_log.addFilter(log_filter)
    try:
        for name in schemas:
            try:
                job = job_run_create(kind=kind, schema_name=name, requested_by=cli_requested_by())
            except JobAlreadyRunning as err:  # one run per kind and schema, whichever door
                failed.append(name)
                write_error(f"{name}: {err}")
                continue
            try:
                run = job_run_execute(job.id, work_for(name))
            except Exception as err:  # recorded on the JobRun by job_run_execute
                failed.append(name)
                write_error(f"{name}: {kind} failed (job {job.id}): {err}")
                continue
            if run.status != JobRun.Status.SUCCEEDED:  # not started: another session runs it
                failed.append(name)
                write_error(f"{name}: {kind} job {job.id} {run.status}: {run.error or run.message}")
                continue
            write(name, run.result)
    finally:
        jobs_log.removeFilter(log_filter)
    return failed
