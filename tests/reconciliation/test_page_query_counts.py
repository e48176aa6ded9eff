"""List pages read a fixed number of queries however many rows they show (no N+1), within an
absolute budget per page (session, user, routing, memberships and the page's own reads)."""

from __future__ import annotations

import pytest

from tests.page_helpers import assert_same, open_discrepancies, queries_for

pytestmark = pytest.mark.django_db


def test_the_reconciliation_queue_does_not_grow_with_its_rows(as_admin, admin_user, acme, globex):
    from reconciliation.services import discrepancy_approve

    first = open_discrepancies("acme", 1, prefix="Q")
    open_discrepancies("globex", 1, prefix="Q")
    small = queries_for(as_admin, "/reconciliation/?status=all")
    more = open_discrepancies("acme", 5, prefix="R") + open_discrepancies("globex", 5, prefix="R")
    # Resolved rows show who resolved them: that must not cost a query per row either.
    for d in first + more[:4]:
        discrepancy_approve(discrepancy_id=d.id, user=admin_user)
    large = queries_for(as_admin, "/reconciliation/?status=all")
    assert "12)" in as_admin.get("/reconciliation/?status=all").content.decode()
    assert_same(small, large, budget=8)


def test_the_support_queue_does_not_grow_with_its_rows(as_acme_support, acme):
    open_discrepancies("acme", 2, prefix="Q")
    small = queries_for(as_acme_support, "/reconciliation/")
    open_discrepancies("acme", 10, prefix="R")
    assert_same(small, queries_for(as_acme_support, "/reconciliation/"), budget=10)


def test_the_discrepancy_page_does_not_grow_with_its_ledger_rows(as_admin, acme):
    from tests.page_helpers import post

    [d] = open_discrepancies("acme", 1, prefix="Q")
    small = queries_for(as_admin, f"/reconciliation/{d.id}/")
    post("acme", [{"item": d.sku, "location": d.location_code, "qty": "1", "kind": "receipt"}] * 20)
    assert_same(small, queries_for(as_admin, f"/reconciliation/{d.id}/"), budget=10)
