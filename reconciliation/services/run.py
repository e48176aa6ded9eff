"""Reconciliation: compare every balance with the sum of its ledger, correct small differences,
queue large ones for people, and resolve queued ones.

Why it is exact while the ledger takes inserts:
- The comparison is one SQL statement, so it reads ledger and balances in one snapshot. The
  trigger updates a balance in the same transaction as its ledger rows, so a snapshot sees both
  or neither: no false differences.
- A correction adds the difference measured in that snapshot (qty = qty + diff). Inserts that
  commit after the snapshot moved the ledger and the balance by the same amount, so the
  difference is still the right correction, whatever landed since.
- Discrepancy rows and corrections commit in one transaction, under a per-tenant advisory lock
  (inventory.balances.balance_writers_lock): a run killed halfway leaves nothing half-done, two
  runs cannot correct the same key twice, and a backfill (which takes the same lock) cannot
  reset a balance between a run's comparison and its correction.
- Every balance read and write is inventory.balances': this shared app has no SQL of its own
  on a tenant table.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from inventory.balances import (
    BalanceWritersBusy,
    balance_add_delta,
    balance_writers_lock,
    balances_compare,
    qty_difference,
)
from reconciliation.models import Discrepancy, ReconciliationRun
from reconciliation.services.closing import discrepancies_close_resolved, live_discrepancies
from tenants.models import Organization

Progress = Callable[[int, int, str], None]

class ReconciliationBusy(Exception):
    """Another run, or a backfill/repair, of this organisation holds its lock."""


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
        return qty_difference(self.ledger_sum, self.balance)

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

    # The balance-writers lock (inventory.balances), held from the comparison to the last
    # correction: a second run, or a backfill, cannot change a balance in between.
    held = contextlib.ExitStack()
    try:
        held.enter_context(balance_writers_lock(wait=False))
    except BalanceWritersBusy:
        raise ReconciliationBusy(
            f"a reconciliation or a balance backfill of {schema} is already running"
        ) from None
    with held:
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
    found = balances_compare(since=since)
    return [Difference(*row) for row in found.rows], found.keys_checked, found.watermark


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
    for d in plan.corrections:  # sorted by key: one lock order with the trigger's upserts
        balance_add_delta(item_id=d.item_id, location_id=d.location_id, lot_id=d.lot_id, delta=d.diff)
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
