"""Reconciliation: compare every balance with the sum of its ledger, correct small differences,
queue large ones for people, and resolve queued ones.

Why it is exact while the ledger takes inserts:
- The comparison is one SQL statement, so it reads ledger and balances in one snapshot. The
  trigger updates a balance in the same transaction as its ledger rows, so a snapshot sees both
  or neither: no false differences.
- A correction adds the difference measured in that snapshot (qty = qty + diff). Inserts that
  commit after the snapshot moved the ledger and the balance by the same amount, so the
  difference is still the right correction, whatever landed since.
- Discrepancy rows and corrections commit in one transaction, under a per-tenant advisory lock:
  a run killed halfway leaves nothing half-done, and two runs cannot correct the same key twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from reconciliation.models import Discrepancy, ReconciliationRun
from reconciliation.services.closing import discrepancies_close_resolved, live_discrepancies
from tenants.models import Organization

Progress = Callable[[int, int, str], None]

_SUMS_FULL = """
    SELECT item_id, location_id, COALESCE(lot_id, 0) AS lot_key, min(lot_id) AS lot_id, sum(qty_canonical) AS qty
      FROM inventory_ledger GROUP BY 1, 2, 3"""
_SUMS_INCREMENTAL = """
    SELECT l.item_id, l.location_id, t.lot_key, min(l.lot_id) AS lot_id, sum(l.qty_canonical) AS qty
      FROM (SELECT DISTINCT item_id, location_id, COALESCE(lot_id, 0) AS lot_key
              FROM inventory_ledger WHERE txid >= %(since)s::text::xid8) t
      JOIN inventory_ledger l
        ON l.item_id = t.item_id AND l.location_id = t.location_id AND COALESCE(l.lot_id, 0) = t.lot_key
     GROUP BY 1, 2, 3"""
# One statement, so one snapshot: the count and the differences can never disagree, and a
# balance and its ledger rows are seen together (the trigger writes both in one transaction).
_COMPARE = """
    WITH sums AS ({sums}),
    joined AS (
        SELECT COALESCE(s.item_id, b.item_id) AS item_id, COALESCE(s.location_id, b.location_id) AS location_id,
               COALESCE(s.lot_id, b.lot_id) AS lot_id, s.qty AS ledger_sum, b.qty_canonical AS balance,
               s.item_id IS NULL AS orphan
          FROM sums s
          {join} inventory_balances b
            ON b.item_id = s.item_id AND b.location_id = s.location_id AND b.lot_key = s.lot_key),
    diffs AS (
        SELECT j.*, i.sku, loc.code AS location_code, lot.code AS lot_code, i.name AS item_name, i.unit
          FROM joined j
          JOIN inventory_items i ON i.id = j.item_id
          JOIN inventory_locations loc ON loc.id = j.location_id
          LEFT JOIN inventory_lots lot ON lot.id = j.lot_id
         WHERE j.ledger_sum IS DISTINCT FROM j.balance)
    SELECT (SELECT count(*) FROM joined),
           (SELECT COALESCE(json_agg(json_build_array(item_id, location_id, lot_id, ledger_sum::text, balance::text,
                                                      orphan, sku, location_code, lot_code, item_name, unit)
                                     ORDER BY item_id, location_id, COALESCE(lot_id, 0)), '[]'::json)
              FROM diffs)"""
_ADD_DELTA = """
    INSERT INTO inventory_balances AS b (item_id, location_id, lot_id, qty_canonical, last_ledger_id, updated_at)
    VALUES (%s, %s, %s, %s, 0, now())
    ON CONFLICT (item_id, location_id, lot_key) DO UPDATE
       SET qty_canonical = b.qty_canonical + EXCLUDED.qty_canonical, updated_at = now()"""


class ReconciliationBusy(Exception):
    """Another run for this organisation holds its lock."""


@dataclass
class Difference:
    item_id: int
    location_id: int
    lot_id: int | None
    ledger_sum: Decimal
    balance: Decimal | None
    orphan: bool
    sku: str
    location_code: str
    lot_code: str
    item_name: str = ""
    unit: str = ""

    @property
    def diff(self) -> Decimal:
        return self.ledger_sum - (self.balance or 0)

    @property
    def kind(self) -> str:
        if self.orphan:
            return Discrepancy.Kind.ORPHAN_BALANCE
        if self.balance is None:
            return Discrepancy.Kind.MISSING_BALANCE
        return Discrepancy.Kind.MISMATCH

    @property
    def key(self) -> tuple:
        return (self.item_id, self.location_id, self.lot_id)


def _lock_key() -> str:
    return f"reconcile:{connection.schema_name}"


def reconciliation_run(
    *,
    mode: str = ReconciliationRun.Mode.FULL,
    dry_run: bool = False,
    tolerance: Decimal | None = None,
    triggered_by: str = "",
    progress: Progress | None = None,
) -> ReconciliationRun:
    """Reconcile the current tenant. Incremental checks only keys with ledger rows since the
    previous successful run's watermark (a full run when there is none)."""
    if mode not in ReconciliationRun.Mode.values:
        raise ValueError(f"unknown mode {mode!r}; use full or incremental")
    schema = connection.schema_name
    if schema == settings.PUBLIC_SCHEMA_NAME:
        raise ValueError(
            "reconciliation runs in a tenant schema; enter schema_context(<tenant>) first"
        )
    org = Organization.objects.get(schema_name=schema)
    tolerance = (
        Decimal(settings.RECONCILIATION_TOLERANCE) if tolerance is None else Decimal(tolerance)
    )
    report = progress or (lambda d, t, m: None)

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [_lock_key()])
        if not cursor.fetchone()[0]:
            raise ReconciliationBusy(f"a reconciliation of {schema} is already running")
    try:
        _close_interrupted_runs(org)
        since = None
        if mode == ReconciliationRun.Mode.INCREMENTAL:
            previous = (
                ReconciliationRun.objects.filter(
                    organization=org, status="succeeded", dry_run=False, watermark_xid__isnull=False
                )
                .order_by("-started_at")
                .first()
            )
            since = previous.watermark_xid if previous else None
        run = ReconciliationRun.objects.create(
            organization=org,
            mode=mode,
            dry_run=dry_run,
            started_at=timezone.now(),
            since_xid=since,
            tolerance=tolerance,
            triggered_by=triggered_by[:150],
        )
        try:
            report(0, 2, "comparing balances with the ledger")
            differences, keys_checked, watermark = _compare(since)
            report(1, 2, f"{len(differences)} difference(s) in {keys_checked} keys")
            run.keys_checked, run.differences_found, run.watermark_xid = (
                keys_checked,
                len(differences),
                watermark,
            )
            with transaction.atomic():
                # Planned and applied in one transaction: the open discrepancies stay locked
                # from the plan to the write (an approve or dismiss of one waits for us).
                plan = _plan(org, differences, tolerance, lock=not dry_run)
                if not dry_run:
                    _apply(run, org, plan)
                run.auto_corrected = len(plan.corrections)
                run.opened = len(plan.new)
                run.still_open = len(plan.still_open)
                run.kept_dismissed = len(plan.kept_dismissed)
                run.auto_closed = discrepancies_close_resolved(
                    organization=org,
                    reason=f"the balance equals the ledger sum again ({mode} reconciliation run {run.pk})",
                    run=run,
                    dry_run=dry_run,
                )
            run.status = ReconciliationRun.Status.SUCCEEDED
            report(2, 2, _counts(run))
        except Exception as err:
            run.status, run.error = ReconciliationRun.Status.FAILED, str(err)[:5000]
            raise
        finally:
            run.finished_at = timezone.now()
            run.save()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [_lock_key()])
    return run


def _close_interrupted_runs(org) -> None:
    # We hold the lock, so any run still marked running died without finishing.
    ReconciliationRun.objects.filter(organization=org, status="running").update(
        status="failed",
        error="interrupted (the process stopped before the run finished)",
        finished_at=timezone.now(),
    )


def _compare(since: int | None) -> tuple[list[Difference], int, int]:
    """Returns (differences, keys checked, watermark for the next incremental run)."""
    incremental = since is not None
    sql = _COMPARE.format(
        sums=_SUMS_INCREMENTAL if incremental else _SUMS_FULL,
        join="LEFT JOIN" if incremental else "FULL OUTER JOIN",
    )
    # Its own (sub)transaction: a tenant whose tables are missing fails here without leaving
    # the caller's transaction aborted, so the run can still be recorded as failed.
    with transaction.atomic(), connection.cursor() as cursor:
        # Taken before the comparison: every transaction not finished by now has an xid >= this,
        # so the next incremental run will look at its rows, whenever it commits.
        cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        watermark = cursor.fetchone()[0]
        cursor.execute(sql, {"since": since})
        keys_checked, rows = cursor.fetchone()
    if isinstance(rows, str):
        rows = json.loads(rows)
    diffs = [
        Difference(
            r[0],
            r[1],
            r[2],
            Decimal(r[3]) if r[3] is not None else Decimal(0),
            Decimal(r[4]) if r[4] is not None else None,
            r[5],
            r[6],
            r[7],
            r[8] or "",
            r[9] or "",
            r[10] or "",
        )
        for r in rows
    ]
    return diffs, keys_checked, watermark


@dataclass
class Plan:
    """What a run does with each difference, decided before anything is written."""

    corrections: list[Difference] = field(default_factory=list)  # below the tolerance
    still_open: list[tuple[Discrepancy, Difference]] = field(default_factory=list)
    kept_dismissed: list[tuple[Discrepancy, Difference]] = field(default_factory=list)
    new: list[tuple[Difference, Discrepancy | None]] = field(default_factory=list)


_CLOSED_BY_PEOPLE_OR_SYSTEM = [
    Discrepancy.Status.APPROVED,
    Discrepancy.Status.DISMISSED,
    Discrepancy.Status.VANISHED,
    Discrepancy.Status.RESOLVED,
]


def _key(d) -> tuple:
    return (d.item_id, d.location_id, d.lot_id)


def _plan(org, differences: list[Difference], tolerance: Decimal, *, lock: bool) -> Plan:
    """Sort the differences: correct the small ones; a large one updates the key's open
    discrepancy, or stays dismissed when the key's last decision was a dismissal of this very
    difference, or opens a new discrepancy (linked to that dismissal when the difference changed)."""
    plan = Plan()
    large = []
    for d in differences:
        (plan.corrections if abs(d.diff) < tolerance else large).append(d)
    # Locked first, before any balance row: approve locks its discrepancy, then the balance,
    # and the run must take them in that order too (else the two can deadlock).
    open_by_key = {
        _key(o): o
        for o in live_discrepancies(organization=org, lock=lock)
        if o.status == Discrepancy.Status.OPEN
    }
    if not large:
        return plan
    # The latest closed discrepancy of each key with a difference: one query (DISTINCT ON).
    last_closed = {
        _key(c): c
        for c in Discrepancy.objects.filter(
            organization=org,
            status__in=_CLOSED_BY_PEOPLE_OR_SYSTEM,
            item_id__in={d.item_id for d in large if _key(d) not in open_by_key},
        )
        .order_by("item_id", "location_id", "lot_id", "-created_at", "-id")
        .distinct("item_id", "location_id", "lot_id")
    }
    for d in large:
        existing = open_by_key.get(d.key)
        if existing is not None:
            plan.still_open.append((existing, d))
            continue
        last = last_closed.get(d.key)
        if last is not None and last.status == Discrepancy.Status.DISMISSED:
            # A dismissal covers its difference as long as it has not been seen gone since.
            if last.difference == d.diff and last.cleared_at is None:
                plan.kept_dismissed.append((last, d))
            else:
                plan.new.append((d, last))
        else:
            plan.new.append((d, None))
    return plan


def _observed(run: ReconciliationRun, d: Difference) -> dict:
    return dict(
        last_seen_run=run,
        sku=d.sku,
        item_name=d.item_name,
        unit=d.unit,
        location_code=d.location_code,
        lot_code=d.lot_code,
        kind=d.kind,
        ledger_sum=d.ledger_sum,
        balance=d.balance,
        difference=d.diff,
        abs_difference=abs(d.diff),
    )


def _apply(run: ReconciliationRun, org, plan: Plan) -> None:
    """Write the plan (inside the run's transaction)."""
    now = timezone.now()
    with connection.cursor() as cursor:
        for d in plan.corrections:  # sorted by key: one lock order with the trigger's upserts
            cursor.execute(_ADD_DELTA, [d.item_id, d.location_id, d.lot_id, d.diff])
    created = [
        Discrepancy(
            organization=org,
            run=run,
            item_id=d.item_id,
            location_id=d.location_id,
            lot_id=d.lot_id,
            status=Discrepancy.Status.AUTO_CORRECTED,
            resolved_at=now,
            balance_before=d.balance,
            balance_after=d.ledger_sum,
            note=f"auto-corrected: |{d.diff}| below tolerance {run.tolerance}",
            **_observed(run, d),
        )
        for d in plan.corrections
    ]
    created += [
        Discrepancy(
            organization=org,
            run=run,
            item_id=d.item_id,
            location_id=d.location_id,
            lot_id=d.lot_id,
            status=Discrepancy.Status.OPEN,
            supersedes=previous,
            **_observed(run, d),
        )
        for d, previous in plan.new
    ]
    Discrepancy.objects.bulk_create(created, batch_size=1000)
    updated = []
    for existing, d in plan.still_open:
        for name, value in _observed(run, d).items():
            setattr(existing, name, value)
        updated.append(existing)
    if updated:
        Discrepancy.objects.bulk_update(
            updated, list(_observed(run, plan.still_open[0][1])), batch_size=1000
        )
    # A dismissal that still holds records that it was seen again; its decision is unchanged.
    seen = []
    for dismissed, _ in plan.kept_dismissed:
        dismissed.last_seen_run = run
        seen.append(dismissed)
    if seen:
        Discrepancy.objects.bulk_update(seen, ["last_seen_run"], batch_size=1000)


def _counts(run: ReconciliationRun) -> str:
    return (
        f"{run.auto_corrected} auto-corrected, {run.opened} new, {run.still_open} still open, "
        f"{run.kept_dismissed} kept dismissed, {run.auto_closed} auto-closed"
    )


def reconciliation_summary(run: ReconciliationRun, seconds: float | None = None) -> dict:
    return {
        "schema": run.organization.schema_name,
        "mode": run.mode,
        "dry_run": run.dry_run,
        "keys_checked": run.keys_checked,
        "differences": run.differences_found,
        "auto_corrected": run.auto_corrected,
        "opened": run.opened,
        "still_open": run.still_open,
        "kept_dismissed": run.kept_dismissed,
        "auto_closed": run.auto_closed,
        "seconds": round(seconds if seconds is not None else (run.seconds or 0), 3),
        "summary": f"{run.keys_checked} keys, {run.differences_found} differences, {_counts(run)}",
    }
