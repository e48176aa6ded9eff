"""List pages read a fixed number of queries however many rows they show (no N+1), within an
absolute budget per page (session, user, routing, memberships and the page's own reads)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tenants.services import api_key_issue, organization_create
from tests.pages.helpers import open_discrepancies, stock_keys

pytestmark = pytest.mark.django_db


def queries_for(client, path: str) -> tuple[int, list[str]]:
    client.get(path)  # warm the session, routing and content-type caches
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path)
    assert response.status_code == 200, response.status_code
    return len(ctx.captured_queries), [q["sql"] for q in ctx.captured_queries]


def assert_same(small: tuple[int, list[str]], large: tuple[int, list[str]], budget: int) -> None:
    """The same count at both sizes, and no more than the page's budget (the count measured when
    the budget was set: a query added to every request fails here too)."""
    assert small[0] == large[0], "\n".join(
        ["queries grew with the rows:", *large[1][len(small[1]) - 3 :]]
    )
    assert large[0] <= budget, "\n".join([f"{large[0]} queries, budget {budget}:", *large[1]])


def test_the_balances_page_does_not_grow_with_its_rows(as_acme_owner, acme):
    stock_keys("acme", 10, prefix="Q")
    small = queries_for(as_acme_owner, "/orgs/acme/balances/")
    stock_keys("acme", 50, prefix="R")  # 60 keys: a full page of 50 and a second page
    large = queries_for(as_acme_owner, "/orgs/acme/balances/")
    assert_same(small, large, budget=12)
    assert_same(small, queries_for(as_acme_owner, "/orgs/acme/balances/?page=2"), budget=12)


def test_the_item_page_does_not_grow_with_its_history(as_acme_owner, acme):
    from django_tenants.utils import schema_context

    from inventory.models import Item
    from tests.pages.helpers import post

    stock_keys("acme", 1, prefix="I")
    with schema_context("acme"):
        item = Item.objects.get(sku="I-0000")
    path = f"/orgs/acme/items/{item.id}/"
    small = queries_for(as_acme_owner, path)
    post("acme", [{"item": "I-0000", "location": "I-LOC-0", "qty": "1", "kind": "receipt"}] * 60)
    assert_same(small, queries_for(as_acme_owner, path), budget=13)


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
    from tests.pages.helpers import post

    [d] = open_discrepancies("acme", 1, prefix="Q")
    small = queries_for(as_admin, f"/reconciliation/{d.id}/")
    post("acme", [{"item": d.sku, "location": d.location_code, "qty": "1", "kind": "receipt"}] * 20)
    assert_same(small, queries_for(as_admin, f"/reconciliation/{d.id}/"), budget=10)


def test_the_fleet_does_not_grow_with_organisations(as_admin, acme, globex):
    small = queries_for(as_admin, "/fleet/")
    organization_create(slug="qc-one", name="Query Count One")
    organization_create(slug="qc-two", name="Query Count Two")
    large = queries_for(as_admin, "/fleet/")
    html = as_admin.get("/fleet/").content.decode()
    assert 'data-org="qc-one"' in html and 'data-org="qc-two"' in html
    assert_same(small, large, budget=16)


def test_the_api_keys_page_does_not_grow_with_keys(as_acme_owner, acme_owner, acme):
    api_key_issue(organization=acme, label="key 0", created_by=acme_owner)
    small = queries_for(as_acme_owner, "/orgs/acme/api-keys/")
    for n in range(1, 8):
        api_key_issue(organization=acme, label=f"key {n}", created_by=acme_owner)
    large = queries_for(as_acme_owner, "/orgs/acme/api-keys/")
    assert as_acme_owner.get("/orgs/acme/api-keys/").content.decode().count("data-prefix=") == 8
    assert_same(small, large, budget=8)


def test_the_backups_page_does_not_grow_with_backups(as_admin):
    from django.utils import timezone

    from operations.models import BackupCheck, BackupRecord

    def add(n):
        for i in range(n):
            r = BackupRecord.objects.create(
                file_name=f"b{i}-{n}.dump", status="ok", started_at=timezone.now()
            )
            BackupCheck.objects.create(ok=True, message="ok", backup=r)

    add(1)
    small = queries_for(as_admin, "/backups/")
    add(8)
    assert_same(small, queries_for(as_admin, "/backups/"), budget=12)
