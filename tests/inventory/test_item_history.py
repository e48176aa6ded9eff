"""The item page's stock over time: the running balance ("after") of every history row, exact on
every keyset page; the on-hand chart from one query whatever the range; kind and date filters."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from tests.factories import make_catalog
from tests.page_helpers import post, table_body, text

pytestmark = pytest.mark.django_db


@pytest.fixture
def item_rows(acme):
    """One item at two locations, 130 movements over the last 20 days (newest last)."""
    with schema_context("acme"):
        [item], locations, _ = make_catalog(items=1, locations=2, lots_per_item=0, prefix="RB")
    now = timezone.now()
    rows = [
        {
            "item": item.sku,
            "location": locations[i % 2].code,
            "qty": str(Decimal(100) if i < 2 else Decimal(i % 7) - Decimal("2.5")),
            "kind": "receipt" if i < 2 else "adjustment",
            "occurred_at": (now - timedelta(hours=(130 - i) * 3)).isoformat(),
        }
        for i in range(130)
    ]
    post("acme", rows)
    return item, [loc.code for loc in locations]


def ledger_sum_through(entry_id: int) -> Decimal:
    """The SUM of the ledger of that row's key up to and including it."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT SUM(n.qty_canonical) FROM acme.inventory_ledger e "
            "JOIN acme.inventory_ledger n ON n.item_id = e.item_id AND n.location_id = e.location_id "
            "AND n.lot_id IS NOT DISTINCT FROM e.lot_id AND n.id <= e.id WHERE e.id = %s",
            [entry_id],
        )
        return cur.fetchone()[0]


def history_rows(html: str) -> list[tuple[int, Decimal]]:
    body = table_body(html, "history")
    return [
        (int(i), Decimal(after))
        for i, after in re.findall(
            r'<tr><td>(\d+)</td>.*?<td class="num after"><span class="[^"]*" data-value="([^"]*)"',
            body,
        )
    ]


def test_it_shows_the_balance_after_each_row_on_page_3(as_acme_owner, item_rows):
    item, _ = item_rows
    path = f"/orgs/acme/items/{item.id}/"
    page = as_acme_owner.get(path)
    for _ in range(2):
        older = re.search(r'href="\?([^"]+)" rel="next"', text(page)).group(1)
        page = as_acme_owner.get(f"{path}?{older.replace('&amp;', '&')}")
    rows = history_rows(text(page))
    assert len(rows) == 30  # 130 rows: pages of 50, 50, 30
    for entry_id, after in rows:
        assert after == ledger_sum_through(entry_id), entry_id


def test_it_keeps_the_running_balance_exact_under_a_kind_filter(as_acme_owner, item_rows):
    item, _ = item_rows
    html = text(as_acme_owner.get(f"/orgs/acme/items/{item.id}/?kind=receipt"))
    rows = history_rows(html)
    assert len(rows) == 2
    assert [after for _, after in rows] == [Decimal(100), Decimal(100)]


def test_it_filters_the_history_by_date_and_carries_the_filter_to_older_pages(
    as_acme_owner, item_rows
):
    item, _ = item_rows
    since = (timezone.localdate() - timedelta(days=3)).isoformat()
    response = as_acme_owner.get(f"/orgs/acme/items/{item.id}/?since={since}&limit=5")
    assert response.status_code == 200
    older = re.search(r'href="\?([^"]+)" rel="next"', text(response)).group(1)
    assert f"since={since}" in older and "limit=5" in older
    with schema_context("acme"):
        from inventory.models import LedgerEntry

        expected = LedgerEntry.objects.filter(item=item, occurred_at__date__gte=since).count()
    seen = len(history_rows(text(response)))
    while older:
        page = text(as_acme_owner.get(f"/orgs/acme/items/{item.id}/?{older.replace('&amp;', '&')}"))
        seen += len(history_rows(page))
        match = re.search(r'href="\?([^"]+)" rel="next"', page)
        older = match.group(1) if match else None
    assert seen == expected


def test_it_refuses_a_bad_kind_or_date_with_a_400_naming_the_field(as_acme_owner, item_rows):
    item, _ = item_rows
    response = as_acme_owner.get(f"/orgs/acme/items/{item.id}/?kind=theft&since=yesterday")
    assert response.status_code == 400
    html = text(response)
    assert 'id="h-kind-error"' in html and 'id="h-since-error"' in html
    assert len(history_rows(html)) == 50  # the valid part still applies


def chart_points(html: str, series: str) -> list[Decimal]:
    group = re.search(rf'<g class="series [^"]*" data-series="{series}">(.*?)</g>', html, re.S)
    assert group, f"no series {series}"
    return [Decimal(v) for v in re.findall(r'<circle [^>]*data-value="([^"]*)"', group.group(1))]


def test_it_charts_on_hand_per_location_and_the_total(as_acme_owner, item_rows):
    item, (loc_a, loc_b) = item_rows
    html = text(as_acme_owner.get(f"/orgs/acme/items/{item.id}/"))
    total, a, b = chart_points(html, "Total"), chart_points(html, loc_a), chart_points(html, loc_b)
    assert len(total) == len(a) == len(b) == 30
    assert [x + y for x, y in zip(a, b, strict=True)] == total
    with schema_context("acme"):
        from inventory.models import Balance

        on_hand = {b.location.code: b.qty_canonical for b in Balance.objects.filter(item=item)}
    assert a[-1] == on_hand[loc_a] and b[-1] == on_hand[loc_b]  # today's point is the balance
    # 20 days of movements, the first two were receipts of 100: before them, nothing on hand.
    assert total[0] == 0


@pytest.mark.parametrize("days", [1, 7, 30, 365])
def test_it_reads_the_chart_in_one_query_whatever_the_range(as_acme_owner, item_rows, days):
    item, _ = item_rows
    path = f"/orgs/acme/items/{item.id}/?days={days}"
    as_acme_owner.get(path)
    with CaptureQueriesContext(connection) as ctx:
        response = as_acme_owner.get(path)
    assert response.status_code == 200
    chart_queries = [q["sql"] for q in ctx.captured_queries if "date_trunc" in q["sql"]]
    assert len(chart_queries) == 1
    assert len(ctx.captured_queries) <= 15
    points = chart_points(text(response), "Total")
    assert len(points) == (24 if days == 1 else days)


def test_it_says_what_to_do_when_the_item_never_moved(as_acme_owner, acme):
    with schema_context("acme"):
        [item], _, _ = make_catalog(items=1, locations=1, lots_per_item=0, prefix="NM")
    html = text(as_acme_owner.get(f"/orgs/acme/items/{item.id}/"))
    assert "the chart draws itself from the first receipt" in html
    assert f"Post a receipt for {item.sku}" in html
