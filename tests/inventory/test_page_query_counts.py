"""List pages read a fixed number of queries however many rows they show (no N+1), within an
absolute budget per page (session, user, routing, memberships and the page's own reads)."""

from __future__ import annotations

import pytest

from tests.page_helpers import assert_same, queries_for, stock_keys

pytestmark = pytest.mark.django_db


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
    from tests.page_helpers import post

    stock_keys("acme", 1, prefix="I")
    with schema_context("acme"):
        item = Item.objects.get(sku="I-0000")
    path = f"/orgs/acme/items/{item.id}/"
    small = queries_for(as_acme_owner, path)
    post("acme", [{"item": "I-0000", "location": "I-LOC-0", "qty": "1", "kind": "receipt"}] * 60)
    # 15: the on-hand chart and the running balances are one query each (issue 15).
    assert_same(small, queries_for(as_acme_owner, path), budget=15)
