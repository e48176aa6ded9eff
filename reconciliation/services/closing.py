"""Close open discrepancies whose difference is gone: the balance equals the ledger sum again
(a backfill, a repair, an approval of the same key by other means). They are closed as resolved
by the system, with the reason, so the queue and the fleet show only what still needs people.

The check and the close are one transaction: the open discrepancies are locked first (an approve
or dismiss of one of them waits), then one statement reads the ledger sum and the balance of
every locked key. Under READ COMMITTED that statement sees everything committed before it, so a
discrepancy is closed only on what the database holds now, never on an older comparison.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from inventory.balances import balances_versus_ledger
from reconciliation.models import Discrepancy, ReconciliationRun


def live_discrepancies(*, organization, lock: bool):
    """The discrepancies a run or a backfill may change: open ones, and dismissals still in
    force (a dismissed difference seen gone no longer covers the same difference coming back).
    Locked all together in id order, so a run and a backfill never wait on each other in a cycle."""
    qs = Discrepancy.objects.filter(
        Q(status=Discrepancy.Status.OPEN)
        | Q(status=Discrepancy.Status.DISMISSED, cleared_at__isnull=True),
        organization=organization,
    ).order_by("pk")
    return qs.select_for_update() if lock else qs


def discrepancies_close_resolved(
    *,
    organization,
    reason: str,
    run: ReconciliationRun | None = None,
    dry_run: bool = False,
) -> int:
    """Close (or, for a dry run, count) the current tenant's open discrepancies whose balance now
    equals the ledger sum, and mark dismissals whose difference is gone as cleared. Returns how
    many open ones were (or would be) closed. Runs in the caller's transaction when there is one."""
    with transaction.atomic():
        found = list(live_discrepancies(organization=organization, lock=not dry_run))
        if not found:
            return 0
        truth = balances_versus_ledger([(d.pk, d.item_id, d.location_id, d.lot_id) for d in found])
        # Same rule as the comparison (IS DISTINCT FROM): no ledger and no balance row is gone too.
        gone = [d for d in found if truth[d.pk][0] == truth[d.pk][1]]
        gone_open = [d for d in gone if d.status == Discrepancy.Status.OPEN]
        if dry_run or not gone:
            return len(gone_open)
        now = timezone.now()
        for d in gone_open:
            d.balance_before, d.balance_after = d.balance, truth[d.pk][1]
            d.status, d.note, d.resolved_by, d.resolved_at = (
                Discrepancy.Status.RESOLVED,
                reason[:1000],
                None,
                now,
            )
        for d in gone:
            d.cleared_at = now
            if run is not None:
                d.last_seen_run = run
        Discrepancy.objects.bulk_update(
            gone,
            [
                "status",
                "note",
                "resolved_by",
                "resolved_at",
                "balance_before",
                "balance_after",
                "last_seen_run",
                "cleared_at",
            ],
        )
    return len(gone_open)
