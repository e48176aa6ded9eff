"""Closing a discrepancy whose difference is gone decides on what the database holds once the
discrepancy is locked, not on an earlier look (committed data, a second real session)."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from django_tenants.utils import schema_context

from inventory.signals import balances_rebuilt
from reconciliation.models import Discrepancy
from reconciliation.services import reconciliation_run
from tests.inventory.helpers import make_catalog

INSERT = (
    "INSERT INTO inventory_ledger (item_id, location_id, lot_id, qty_canonical, kind, reference, "
    "occurred_at, recorded_at, recorded_by) VALUES (%s, %s, NULL, 100, 'receipt', '', now(), now(), '')"
)
SKEW = "UPDATE inventory_balances SET qty_canonical = qty_canonical + %s WHERE item_id = %s"
LOCK = "SELECT 1 FROM reconciliation_discrepancies WHERE id = %s FOR UPDATE"


def test_it_decides_on_what_was_committed_while_it_waited_for_the_locks(committed):
    with schema_context("acme"):
        items, [location], _ = make_catalog(items=2, locations=1, lots_per_item=0, prefix="C")
    with committed.connect("acme", autocommit=True) as conn:
        for item in items:
            conn.execute(INSERT, [item.id, location.id])
            conn.execute(SKEW, [Decimal("5"), item.id])
    with schema_context("acme"):
        reconciliation_run(mode="full")
    fixed, approved = (Discrepancy.objects.get(item_id=i.id, status="open") for i in items)

    # Another session holds both discrepancies (as approvals in progress would) and, before it
    # commits: fixes the first key's balance by hand, approves the second.
    other = committed.connect("acme")
    other.execute(LOCK, [fixed.id])
    other.execute(LOCK, [approved.id])
    other.execute(SKEW, [Decimal("-5"), items[0].id])
    other.execute(SKEW, [Decimal("-5"), items[1].id])
    other.execute(
        "UPDATE reconciliation_discrepancies SET status = 'approved', note = 'by hand' WHERE id = %s",
        [approved.id],
    )

    def commit_later():
        time.sleep(0.5)
        other.commit()

    thread = threading.Thread(target=commit_later)
    thread.start()
    started = time.monotonic()
    balances_rebuilt.send(sender=None, schema_name="acme")  # waits for the locks
    waited = time.monotonic() - started
    thread.join()
    other.close()

    assert waited >= 0.4, "the close did not wait for the discrepancies' locks"
    fixed.refresh_from_db()
    approved.refresh_from_db()
    # The fix committed while it waited is seen (the truth is read after the lock) ...
    assert (fixed.status, fixed.balance_before, fixed.balance_after) == (
        "resolved",
        Decimal("105"),
        Decimal("100"),
    )
    # ... and a discrepancy resolved meanwhile is not closed a second time.
    assert (approved.status, approved.note) == ("approved", "by hand")
