"""An owner's home for an organisation: on hand per location, negative and zero balances, the
most-moved items of the week, the last reconciliation, each linking into the balance browser."""

from __future__ import annotations

import re

import pytest

from tests.page_helpers import post, queries_for, skew_and_reconcile, stock_keys, text

pytestmark = pytest.mark.django_db


def test_it_sums_per_location_counts_signs_and_links_to_the_filtered_browser(as_acme_owner, acme):
    from django_tenants.utils import schema_context

    from tests.factories import make_catalog

    with schema_context("acme"):
        items, locations, _ = make_catalog(items=3, locations=2, lots_per_item=0, prefix="H")
    a, b, c = (i.sku for i in items)
    l1, l2 = (loc.code for loc in locations)
    post(
        "acme",
        [
            {"item": a, "location": l1, "qty": "1250.5", "kind": "receipt"},
            {"item": b, "location": l1, "qty": "2", "kind": "receipt"},
            {"item": b, "location": l1, "qty": "-2", "kind": "adjustment"},
            {"item": c, "location": l2, "qty": "-3", "kind": "adjustment"},
        ],
    )
    response = as_acme_owner.get("/orgs/acme/")
    assert response.status_code == 200
    html = text(response)
    assert 'href="/orgs/acme/balances/?sign=negative"' in html
    assert re.search(
        r'id="negative-link"><strong class="neg"><span class="qty" data-value="1">1<', html
    )
    assert re.search(r'id="zero-link"><strong><span class="qty" data-value="1">1<', html)
    assert f'href="/orgs/acme/balances/?location={l1}"' in html
    assert "1,250.5" in html and "\u22123" in html
    # b moved twice this week: first among the most moved, linked to its page and its balances.
    moved = html.split('id="most-moved"')[1]
    assert moved.index(f">{b}<") < moved.index(f">{a}<")
    assert f'href="/orgs/acme/balances/?q={b}"' in moved


def test_it_shows_the_last_reconciliation(as_acme_owner, acme):
    stock_keys("acme", 2, prefix="R")
    skew_and_reconcile("acme", by="5")
    html = text(as_acme_owner.get("/orgs/acme/")).split('id="last-run"')[1]
    assert "2 balances checked: <strong>" in html.replace(
        '<span class="qty" data-value="2">2</span>', "2"
    )


def test_it_says_what_to_do_in_an_empty_organisation(as_acme_owner, acme):
    html = text(as_acme_owner.get("/orgs/acme/"))
    assert "No stock recorded yet. Post the first receipts" in html
    assert "No reconciliation has run yet" in html


def test_it_is_for_owners_only(as_acme_support, as_globex_owner, acme, globex):
    assert as_acme_support.get("/orgs/acme/").status_code == 403
    assert as_globex_owner.get("/orgs/acme/").status_code == 404


def test_it_reads_a_fixed_number_of_queries(as_acme_owner, acme):
    stock_keys("acme", 2, prefix="S")
    small = queries_for(as_acme_owner, "/orgs/acme/")
    stock_keys("acme", 30, prefix="T")
    skew_and_reconcile("acme", by="1")
    large = queries_for(as_acme_owner, "/orgs/acme/")
    assert small[0] == large[0] and large[0] <= 14, large[1]
