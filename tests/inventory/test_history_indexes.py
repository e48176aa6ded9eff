"""Every ledger history query the item page and /api/ledger make is served by an index (issue
18.1): on a ledger where the asked-for rows are few and old, EXPLAIN ANALYZE shows no sequential
scan of inventory_ledger and no walk that filters away the rest of the ledger (ordering by -id
with an item filter used to walk the primary key backwards through every row)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from tests.factories import make_catalog

pytestmark = pytest.mark.django_db

# Many items moved about equally often, none stands out: the planner estimates any item, the
# rare one too, at BUSY_ROWS / BUSY_ITEMS rows, as it did for the 5·10^6-row organisation.
BUSY_ITEMS = 300
BUSY_ROWS = 90_000
# A scan that reads (or filters away) more rows than this is reading the history, not a page
# of it (pages are 100 rows at most).
MAX_ROWS_READ = 2_000


@pytest.fixture
def long_ledger(acme):
    """A busy ledger and one rarely moved item whose 5 rows are the oldest ids but the newest
    occurred_at (the others backdated): the worst case for a backward primary-key walk."""
    with schema_context("acme"):
        items, locations, _ = make_catalog(
            items=BUSY_ITEMS + 1, locations=3, lots_per_item=0, prefix="H"
        )
        rare, busy = items[0], items[1:]
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO inventory_ledger (qty_canonical, kind, reference, occurred_at, "
                " recorded_at, recorded_by, item_id, location_id) "
                "SELECT 1, 'receipt', '', now(), now(), 'test', %s, %s FROM generate_series(1, 5)",
                [rare.id, locations[1].id],
            )
            cursor.execute(
                "INSERT INTO inventory_ledger (qty_canonical, kind, reference, occurred_at, "
                " recorded_at, recorded_by, item_id, location_id) "
                "SELECT 1, 'receipt', '', now() - interval '30 days', now(), 'test', "
                "       (%s::bigint[])[1 + g %% %s], (%s::bigint[])[1 + (g / %s) %% 3] "
                "  FROM generate_series(1, %s) g",
                [
                    [i.id for i in busy],
                    len(busy),
                    [loc.id for loc in locations],
                    len(busy),
                    BUSY_ROWS,
                ],
            )
            # Statistics for every table the queries join: with stale ones on the catalog (a
            # long suite before this test), the planner looped an index scan once per item and
            # location (5 rows x 903 loops) instead of reading the 5 rows once.
            cursor.execute(
                "ANALYZE inventory_ledger; ANALYZE inventory_items; ANALYZE inventory_locations; "
                "ANALYZE inventory_lots"
            )
    return rare, busy[0], locations[1]


def _ledger_queries(client: Client, path: str, **headers) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path, **headers)
    assert response.status_code == 200, response.content[:300]
    # The on-hand chart's SUM over the item's whole history (inventory/history.py) is an
    # aggregate, not a page of history: it is not covered here.
    queries = [
        q["sql"]
        for q in ctx.captured_queries
        if "inventory_ledger" in q["sql"] and "date_trunc" not in q["sql"]
    ]
    assert queries, f"{path} read no ledger rows"
    return queries


def _scans(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _scans(child)


def _assert_indexed(sql: str) -> None:
    with schema_context("acme"), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    ledger_nodes = [
        n for n in _scans(plan[0]["Plan"]) if n.get("Relation Name") == "inventory_ledger"
    ]
    assert ledger_nodes, sql
    for node in ledger_nodes:
        assert node["Node Type"] != "Seq Scan", (sql, node)
        read = node["Actual Rows"] * node["Actual Loops"] + node.get("Rows Removed by Filter", 0)
        assert read < MAX_ROWS_READ, (sql, node["Node Type"], node.get("Index Name"), read)


@pytest.mark.parametrize("which", ["rare", "busy"])
def test_it_serves_the_item_pages_history_from_an_index(long_ledger, as_acme_owner, which):
    rare, busy, _ = long_ledger
    client = as_acme_owner
    path = f"/orgs/acme/items/{(rare if which == 'rare' else busy).id}/"
    client.get(path)
    for sql in _ledger_queries(client, path):
        _assert_indexed(sql)


@pytest.mark.parametrize("which", ["rare", "busy"])
@pytest.mark.parametrize(
    "query",
    ["item={sku}", "item={sku}&location={location}", "since={since}", "item={sku}&since={since}"],
)
def test_it_serves_the_api_ledger_from_an_index(long_ledger, acme_key, query, which):
    from datetime import timedelta

    from django.utils import timezone

    rare, busy, location = long_ledger
    item = rare if which == "rare" else busy
    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    client = Client(HTTP_HOST="acme.localhost", headers={"X-Api-Key": acme_key})
    # limit=50: the item page's size, where the planner preferred walking the primary key.
    path = "/api/ledger?limit=50&" + query.format(sku=item.sku, location=location.code, since=since)
    body = client.get(path).json()
    # The busy items' rows are backdated 30 days: a since of yesterday finds only the rare's.
    if which == "rare" or query == "since={since}":
        expected = 5
    else:
        expected = 0 if "since" in query else 50
    assert len(body["results"]) == expected, body
    for sql in _ledger_queries(client, path):
        _assert_indexed(sql)
