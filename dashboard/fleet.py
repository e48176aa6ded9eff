"""What the fleet and runbook pages show: each organisation's migration state, read with a fixed
number of queries however many organisations there are."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Count
from django.utils import timezone
from django_q.models import Schedule

from inventory.services.validation import (
    BalanceObjects,
    balance_objects_by_schema,
    migration_validate,
)
from operations.backups import newest_backup_status
from operations.health import pending_migrations_for
from operations.jobs import job_runs_reap
from operations.models import BackupRecord, JobRun
from operations.schedules import SCHEDULES
from reconciliation.models import Discrepancy, ReconciliationRun
from tenants.models import Organization

# Recorded in django_migrations by this migration; when it is recorded and the objects are not
# in the catalog, `migrate_schemas` will not put them back: only the repair does.
BALANCE_MIGRATION = "inventory.0002_inventory_balances"


@dataclass
class FleetRow:
    org: Organization
    pending: list[str]
    objects: BalanceObjects
    last_backfill: JobRun | None
    last_validation: JobRun | None
    last_reconciliation: ReconciliationRun | None
    open_discrepancies: int
    reasons: list[str] = field(default_factory=list)
    # No good backup taken after the organisation existed, or the newest is too old.
    backup_old: bool = False

    @property
    def balance_table(self) -> bool:
        return self.objects.table

    @property
    def trigger_enabled(self) -> bool:
        return self.objects.trigger and self.objects.trigger_enabled

    @property
    def recorded_but_missing(self) -> list[str]:
        """The guide's objects django_migrations calls applied but the catalog does not hold."""
        if BALANCE_MIGRATION in self.pending or not self.objects.ledger:
            return []
        return self.objects.missing

    @property
    def needs_attention(self) -> bool:
        return bool(self.reasons)

    @property
    def validation_ok(self) -> bool | None:
        if self.last_validation is None or self.last_validation.status != "succeeded":
            return None if self.last_validation is None else False
        return bool(self.last_validation.result.get("ok"))


def _latest_jobs(kinds: list[str], schemas: list[str]) -> dict[str, JobRun]:
    runs = (
        JobRun.objects.filter(kind__in=kinds, schema_name__in=schemas)
        .order_by("schema_name", "-created_at")
        .distinct("schema_name")
    )
    return {run.schema_name: run for run in runs}


def fleet_rows(orgs: list[Organization] | None = None) -> list[FleetRow]:
    orgs = list(Organization.objects.tenants().order_by("slug")) if orgs is None else orgs
    schemas = [o.schema_name for o in orgs]
    # A run whose worker died is shown as interrupted, not running, even when no page polls it.
    job_runs_reap(list(JobRun.objects.filter(schema_name__in=schemas, status__in=JobRun.ACTIVE)))
    pending = pending_migrations_for(schemas) if schemas else {}
    catalog = balance_objects_by_schema(schemas)
    # A repair ends with a backfill, so it counts as the last backfill.
    backfills = _latest_jobs([JobRun.Kind.BACKFILL, JobRun.Kind.REPAIR], schemas)
    validations = _latest_jobs([JobRun.Kind.VALIDATE], schemas)
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
    newest_backup = (
        BackupRecord.objects.filter(status=BackupRecord.Status.OK)
        .order_by("-started_at")
        .only("started_at")
        .first()
    )
    backup_cutoff = timezone.now() - timedelta(hours=settings.BACKUP_MAX_AGE_HOURS)
    rows = []
    for org in orgs:
        row = FleetRow(
            org,
            pending.get(org.schema_name, []),
            catalog[org.schema_name],
            backfills.get(org.schema_name),
            validations.get(org.schema_name),
            recon.get(org.id),
            open_counts.get(org.id, 0),
        )
        if row.pending:
            row.reasons.append(f"{len(row.pending)} migration(s) pending")
        if row.recorded_but_missing:
            row.reasons.append(
                "recorded as applied but missing: "
                + ", ".join(row.recorded_but_missing)
                + f" (run repair_balances --schema {org.schema_name})"
            )
        elif not row.objects.live:
            row.reasons.append("balance table or trigger missing/disabled")
        if row.validation_ok is False:
            row.reasons.append("last validation failed")
        if row.open_discrepancies:
            row.reasons.append(f"{row.open_discrepancies} open discrepancies")
        if row.last_reconciliation and row.last_reconciliation.status == "failed":
            row.reasons.append("last reconciliation failed")
        if not org.is_active:
            row.reasons.append("inactive")
        row.backup_old = newest_backup is None or newest_backup.started_at < max(
            org.created_at, backup_cutoff
        )
        rows.append(row)
    return rows


# Each key ends with the slug, so the order is total and "desc" is exactly the reverse.
SORTS = {
    "slug": lambda r: r.org.slug,
    "name": lambda r: (r.org.name.lower(), r.org.slug),
    "pending": lambda r: (-len(r.pending), r.org.slug),
    "balance": lambda r: (r.objects.live, r.org.slug),
    "backfill": lambda r: (
        r.last_backfill.created_at.timestamp() if r.last_backfill else 0,
        r.org.slug,
    ),
    "validation": lambda r: ({False: 0, None: 1, True: 2}[r.validation_ok], r.org.slug),
    "reconciled": lambda r: (
        r.last_reconciliation.started_at.timestamp() if r.last_reconciliation else 0,
        r.org.slug,
    ),
    "discrepancies": lambda r: (-r.open_discrepancies, r.org.slug),
    "attention": lambda r: (not r.needs_attention, r.org.slug),
}


@dataclass
class RunbookStep:
    key: str
    title: str
    done: bool
    detail: str
    action: str | None = None  # the job kind its button starts


def _backup_step(org: Organization) -> RunbookStep:
    """Only a good backup taken after the organisation existed protects its data."""
    status = newest_backup_status()  # age and ok against BACKUP_MAX_AGE_HOURS
    newest = (
        BackupRecord.objects.filter(status=BackupRecord.Status.OK)
        .order_by("-started_at")
        .only("file_name", "started_at")
        .first()
    )
    since_created = newest is not None and newest.started_at >= org.created_at
    done = bool(status and status["ok"] and since_created)
    if newest is None:
        detail = "no good backup yet"
    elif not since_created:
        detail = (
            f"newest: {newest.file_name}, taken before {org.slug} was created "
            f"({org.created_at:%Y-%m-%d %H:%M}); take a backup"
        )
    else:
        detail = f"newest: {newest.file_name} ({status['age_seconds'] // 60} min old)"
        if not status["ok"]:
            detail += f" — {status.get('message', 'too old')}"
    return RunbookStep("backup", "1. Backup taken", done, detail, "backup")


# Checks about data or the public schema, which the repair of the migration's objects is not for.
NOT_OBJECT_CHECKS = {"Organizations table exists", "Balances cover the ledger"}


def _migrate_step(row: FleetRow, validation) -> RunbookStep:
    missing = row.recorded_but_missing
    altered = [c.name for c in validation.failed if c.name not in NOT_OBJECT_CHECKS]
    if missing:
        return RunbookStep(
            "migrate",
            "2. Migrations applied",
            False,
            "recorded as applied, but missing in the database: "
            + ", ".join(missing)
            + ". Apply migrations would change nothing; Repair puts back the current objects and "
            f"backfills (manage.py repair_balances --schema {row.org.schema_name})",
            "repair",
        )
    if row.pending:
        return RunbookStep(
            "migrate",
            "2. Migrations applied",
            False,
            "pending: " + ", ".join(row.pending),
            "migrate",
        )
    if row.objects.ledger and altered:
        # Present, but not as the migrations left them (a disabled trigger, an unpinned function,
        # a dropped index): migrate_schemas would not touch them either.
        return RunbookStep(
            "migrate",
            "2. Migrations applied",
            False,
            "recorded as applied, but not as the migrations left them: "
            + "; ".join(altered)
            + f" failing. Repair puts back the current objects and backfills "
            f"(manage.py repair_balances --schema {row.org.schema_name})",
            "repair",
        )
    return RunbookStep(
        "migrate",
        "2. Migrations applied",
        row.objects.present,
        "all applied; balance table, function and trigger present"
        if row.objects.present
        else "not an inventory schema: " + ", ".join(row.objects.missing) + " missing",
        "migrate",
    )


def runbook_steps(org: Organization) -> tuple[list[RunbookStep], object]:
    [row] = fleet_rows([org])
    validation = migration_validate(schema=org.schema_name)
    schedule_names = set(
        Schedule.objects.filter(name__in=[s.name for s in SCHEDULES]).values_list("name", flat=True)
    )
    missing_schedules = [s.name for s in SCHEDULES if s.name not in schedule_names]
    backfill = row.last_backfill
    coverage = next((c for c in validation.checks if c.name == "Balances cover the ledger"), None)
    covered = coverage is not None and coverage.ok
    if backfill is None:
        backfill_detail = "never run"
    else:
        backfill_detail = (
            f"{backfill.kind} {backfill.status} "
            f"{backfill.finished_at or backfill.created_at:%Y-%m-%d %H:%M} — {backfill.message}"
        )
    if not covered:
        backfill_detail += " · " + (
            coverage.detail if coverage is not None else "no balance table to backfill"
        )
    steps = [
        _backup_step(org),
        _migrate_step(row, validation),
        RunbookStep(
            "backfill",
            "3. Balances backfilled",
            bool(backfill and backfill.status == "succeeded" and covered),
            backfill_detail,
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
            not row.pending and row.objects.live,
            "schema migrated, balance table and trigger live"
            if row.objects.live
            else "balance table, function or trigger missing or disabled"
            f" (manage.py repair_balances --schema {org.schema_name})",
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


def fleet_select(*, only: str | None = None, slugs: list[str] | None = None):
    """The organisations a fleet run covers, and how they were chosen (`--org`, `--only
    needs-attention`, or all active ones)."""
    from dashboard.fleet_runs import FleetRunError

    orgs = Organization.objects.tenants().order_by("slug")
    if slugs:
        found = list(orgs.filter(slug__in=slugs))
        unknown = sorted(set(slugs) - {o.slug for o in found})
        if unknown:
            raise FleetRunError(f"no such organisation: {', '.join(unknown)}")
        return found, "orgs: " + ", ".join(o.slug for o in found)
    active = list(orgs.filter(is_active=True))
    if only == "needs-attention":
        return [r.org for r in fleet_rows(active) if r.needs_attention], "needs attention"
    return active, "all active"


# The fleet page's filters, each also a count at the top ("912 ok · 61 pending migrations").
STATES = {
    "ok": ("ok", lambda r: not r.needs_attention),
    "attention": ("need attention", lambda r: r.needs_attention),
    "pending": ("pending migrations", lambda r: bool(r.pending)),
    "validation_failed": ("validation failed", lambda r: r.validation_ok is False),
    "discrepancies": ("open discrepancies", lambda r: r.open_discrepancies > 0),
    "backup_old": ("no recent backup", lambda r: r.backup_old),
    "inactive": ("inactive", lambda r: not r.org.is_active),
}
PAGE_SIZE = 50


@dataclass
class FleetPage:
    counts: list[tuple[str, str, int]]  # (state, label, n)
    page: object  # a Paginator page of FleetRow
    total: int


def fleet_page_rows(
    *,
    q: str = "",
    state: str = "",
    sort: str = "slug",
    desc: bool = False,
    page=1,
    page_size: int = PAGE_SIZE,
) -> FleetPage:
    """Every organisation's row is computed with the same few queries (fleet_rows), so the
    counts cover the whole fleet; search, filter, sort and paging are then done in memory and
    only one page is rendered. The number of queries does not depend on the fleet's size."""
    rows = fleet_rows()
    counts = [
        (key, label, sum(1 for r in rows if test(r))) for key, (label, test) in STATES.items()
    ]
    q = q.strip().lower()
    if q:
        rows = [r for r in rows if q in r.org.slug or q in r.org.name.lower()]
    if state in STATES:
        rows = [r for r in rows if STATES[state][1](r)]
    rows.sort(key=SORTS.get(sort, SORTS["slug"]), reverse=desc)
    paginator = Paginator(rows, page_size)
    return FleetPage(counts, paginator.get_page(page), len(rows))
