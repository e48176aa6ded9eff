"""django-q2 entry points for tenant inventory jobs; each enters its tenant's schema itself."""

from __future__ import annotations

from django_tenants.utils import schema_context

from inventory.services.backfill import balances_backfill
from inventory.services.validation import migration_validate
from operations.jobs import job_run_execute
from tenants.schemas import tenant_schemas


def backfill_tenant(schema_name: str, job_id: int) -> dict:
    def work(progress):
        tenant_schemas(schema=schema_name)  # refuses an unknown schema
        with schema_context(schema_name):
            result = balances_backfill(progress=progress)
        return result.as_dict() | {
            "summary": f"{result.ledger_rows} ledger rows read, "
            f"{result.balance_rows_written} balance rows written"
        }

    return job_run_execute(job_id, work).result


def validate_tenant(schema_name: str, job_id: int) -> dict:
    def work(progress):
        tenant_schemas(schema=schema_name)  # refuses an unknown schema
        with schema_context(schema_name):
            report = migration_validate(schema=schema_name)
        progress(1, 1, "checked")
        failed = len(report.failed)
        return report.as_dict() | {
            "summary": "all checks passed" if report.ok else f"{failed} check(s) failed"
        }

    return job_run_execute(job_id, work).result
