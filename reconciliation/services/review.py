"""Review actions on queued discrepancies: approve (set the balance to the ledger sum), dismiss
with a reason, one or many."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from inventory.balances import balance_set_to_ledger
from reconciliation.models import Discrepancy


class ResolutionError(Exception):
    pass


def _open_for_update(discrepancy_id: int) -> Discrepancy:
    """Lock the discrepancy for this transaction; only an open one can be resolved."""
    d = (
        Discrepancy.objects.select_for_update()
        .select_related("organization")
        .get(pk=discrepancy_id)
    )
    if d.status != Discrepancy.Status.OPEN:
        raise ResolutionError(f"discrepancy {d.pk} is already {d.status}")
    return d


def discrepancy_approve(*, discrepancy_id: int, user, note: str = "") -> Discrepancy:
    """Set the balance to the ledger sum as it is now, under the balance row's lock, and record
    what changed. If the difference has meanwhile gone, close it as vanished instead."""
    from django_tenants.utils import schema_context

    with transaction.atomic():
        d = _open_for_update(discrepancy_id)
        with schema_context(d.organization.schema_name):
            # Locks the balance row (inventory.balances): inserters on this key wait for us.
            before, ledger_sum = balance_set_to_ledger(
                item_id=d.item_id, location_id=d.location_id, lot_id=d.lot_id
            )
        d.balance_before, d.balance_after = before, ledger_sum
        d.status = (
            Discrepancy.Status.APPROVED if ledger_sum != before else Discrepancy.Status.VANISHED
        )
        d.note = note.strip() or (
            "balance set to the ledger sum"
            if ledger_sum != before
            else "the difference had disappeared before approval; nothing changed"
        )
        d.resolved_by, d.resolved_at = user, timezone.now()
        d.save()
    return d


def discrepancy_dismiss(*, discrepancy_id: int, user, reason: str) -> Discrepancy:
    reason = (reason or "").strip()
    if not reason:
        raise ResolutionError("a reason is required to dismiss a discrepancy")
    with transaction.atomic():
        d = _open_for_update(discrepancy_id)
        d.status, d.note, d.resolved_by, d.resolved_at = (
            Discrepancy.Status.DISMISSED,
            reason,
            user,
            timezone.now(),
        )
        d.save()
    return d


def discrepancies_dismiss(*, discrepancy_ids: list[int], user, reason: str) -> list[int]:
    """Dismiss many with one reason, all or nothing. Only open ones are dismissed (locked in id
    order, the order every locker uses); returns the ids dismissed."""
    reason = (reason or "").strip()
    if not reason:
        raise ResolutionError("a reason is required to dismiss discrepancies")
    with transaction.atomic():
        ids = list(
            Discrepancy.objects.select_for_update()
            .filter(pk__in=discrepancy_ids, status=Discrepancy.Status.OPEN)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        Discrepancy.objects.filter(pk__in=ids).update(
            status=Discrepancy.Status.DISMISSED,
            note=reason,
            resolved_by=user,
            resolved_at=timezone.now(),
        )
    return ids
