"""What the fleet and runbook pages show: each organisation's migration state, read with a fixed
number of queries however many organisations there are."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Count
from django_q.models import Schedule

from operations.backups import newest_backup_status
from operations.health import pending_migrations_by_schema
from operations.models import JobRun
from operations.schedules import SCHEDULES
from reconciliation.models import Discrepancy, ReconciliationRun
from tenants.access import tenant_orgs
from tenants.models import Organization


@dataclass
class FleetRow:
    org: Organization
    pending: list[str]
    balance_table: bool
    trigger_enabled: bool
    last_backfill: JobRun | None
    last_validation: JobRun | None
    last_reconciliation: ReconciliationRun | None
    open_discrepancies: int
    reasons: list[str] = field(default_factory=list)

    @property
    def needs_attention(self) -> bool:
        return bool(self.reasons)

    @property
    def validation_ok(self) -> bool | None:
        if self.last_validation is None or self.last_validation.status != "succeeded":
            return None if self.last_validation is None else False
        return bool(self.last_validation.result.get("ok"))


def _catalog_state(schemas: list[str]) -> dict[str, tuple[bool, bool]]:
    if not schemas:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT s.name,
                   to_regclass(quote_ident(s.name) || '.inventory_balances') IS NOT NULL,
                   EXISTS (SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                             JOIN pg_namespace n ON n.oid = c.relnamespace
                            WHERE n.nspname = s.name AND c.relname = 'inventory_ledger'
                              AND t.tgname = 'inventory_ledger_balance_trigger' AND t.tgenabled IN ('O', 'A'))
              FROM unnest(%s::text[]) AS s(name)""",
            [schemas],
        )
        return {name: (table, trigger) for name, table, trigger in cursor.fetchall()}


def _latest_jobs(kind: str, schemas: list[str]) -> dict[str, JobRun]:
    runs = (
        JobRun.objects.filter(kind=kind, schema_name__in=schemas)
        .order_by("schema_name", "-created_at")
        .distinct("schema_name")
    )
    return {run.schema_name: run for run in runs}


def fleet_rows(orgs: list[Organization] | None = None) -> list[FleetRow]:
    orgs = list(tenant_orgs().order_by("slug")) if orgs is None else orgs
    schemas = [o.schema_name for o in orgs]
    pending = pending_migrations_by_schema(schemas) if schemas else {}
    catalog = _catalog_state(schemas)
    backfills = _latest_jobs(JobRun.Kind.BACKFILL, schemas)
    validations = _latest_jobs(JobRun.Kind.VALIDATE, schemas)
    recon = {
        r.organization_id: r
        for r in ReconciliationRun.objects.filter(organization__in=orgs)
        .order_by("organization_id", "-started_at")
        .distinct("organization_id")
    }
    open_counts = dict(
        Discrepancy.objects.filter(organization__in=orgs, status="open")
        .values("organization_id")
        .annotate(n=Count("id"))
        .values_list("organization_id", "n")
    )
    rows = []
    for org in orgs:
        table, trigger = catalog.get(org.schema_name, (False, False))
        row = FleetRow(
            org,
            pending.get(org.schema_name, []),
            table,
            trigger,
            backfills.get(org.schema_name),
            validations.get(org.schema_name),
            recon.get(org.id),
            open_counts.get(org.id, 0),
        )
        if row.pending:
            row.reasons.append(f"{len(row.pending)} migration(s) pending")
        if not table or not trigger:
            row.reasons.append("balance table or trigger missing/disabled")
        if row.validation_ok is False:
            row.reasons.append("last validation failed")
        if row.open_discrepancies:
            row.reasons.append(f"{row.open_discrepancies} open discrepancies")
        if row.last_reconciliation and row.last_reconciliation.status == "failed":
            row.reasons.append("last reconciliation failed")
        if not org.is_active:
            row.reasons.append("inactive")
        rows.append(row)
    return rows


SORTS = {
    "slug": lambda r: r.org.slug,
    "pending": lambda r: -len(r.pending),
    "discrepancies": lambda r: -r.open_discrepancies,
    "reconciled": lambda r: (
        r.last_reconciliation.started_at.timestamp() if r.last_reconciliation else 0
    ),
    "backfill": lambda r: r.last_backfill.created_at.timestamp() if r.last_backfill else 0,
    "attention": lambda r: (not r.needs_attention, r.org.slug),
}


@dataclass
class RunbookStep:
    key: str
    title: str
    done: bool
    detail: str
    action: str | None = None  # the job kind its button starts


def runbook_steps(org: Organization) -> tuple[list[RunbookStep], object]:
    from inventory.services.validation import migration_validate

    [row] = fleet_rows([org])
    backup = newest_backup_status()
    validation = migration_validate(schema=org.schema_name)
    schedule_names = set(
        Schedule.objects.filter(name__in=[s.name for s in SCHEDULES]).values_list("name", flat=True)
    )
    missing_schedules = [s.name for s in SCHEDULES if s.name not in schedule_names]
    backfill = row.last_backfill
    steps = [
        RunbookStep(
            "backup",
            "1. Backup taken",
            bool(backup and backup["ok"]),
            f"newest: {backup['newest']} ({backup['age_seconds'] // 60} min old)"
            if backup and backup.get("newest")
            else "no good backup yet",
            "backup",
        ),
        RunbookStep(
            "migrate",
            "2. Migrations applied",
            not row.pending,
            "all applied" if not row.pending else "pending: " + ", ".join(row.pending),
            "migrate",
        ),
        RunbookStep(
            "backfill",
            "3. Balances backfilled",
            bool(backfill and backfill.status == "succeeded"),
            "never run"
            if backfill is None
            else f"{backfill.status} {backfill.finished_at or backfill.created_at:%Y-%m-%d %H:%M} — {backfill.message}",
            "backfill",
        ),
        RunbookStep(
            "validate",
            "4. Validation checks",
            validation.ok,
            "all checks passed" if validation.ok else f"{len(validation.failed)} check(s) failing",
            "validate",
        ),
        RunbookStep(
            "health",
            "5. Health verified",
            not row.pending and row.balance_table and row.trigger_enabled,
            "schema migrated, balance table and trigger live"
            if row.balance_table and row.trigger_enabled
            else "balance table or trigger missing",
        ),
        RunbookStep(
            "schedules",
            "6. Schedules in place",
            not missing_schedules,
            "reconcile 02:00, monitor 03:00, daily backup"
            if not missing_schedules
            else "missing: " + ", ".join(missing_schedules) + " (run setup_schedules)",
        ),
    ]
    return steps, validation


def attention_filter(rows: list[FleetRow], only_attention: bool) -> list[FleetRow]:
    return [r for r in rows if r.needs_attention] if only_attention else rows
