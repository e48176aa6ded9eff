"""Balances as of an instant (issue 14), by occurred_at: the current balance minus the movements
that occurred after it, exact against SUM(ledger WHERE occurred_at <= T) per key, including
backdated entries (recorded now, occurred earlier) and lots."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from inventory.models import Balance
from inventory.selectors import with_qty_as_of
from inventory.services.posting import ledger_entries_create
from tests.inventory.helpers import random_qty

START = timezone.now().replace(microsecond=0) - timedelta(days=30)


@pytest.fixture
def client_acme(acme_key):
    return Client(HTTP_HOST="acme.localhost", headers={"X-Api-Key": acme_key})


def ledger_sums(as_of) -> dict:
    with connection.cursor() as cur:
        cur.execute(
            """SELECT i.sku, l.code, t.code, sum(e.qty_canonical)
                 FROM inventory_ledger e JOIN inventory_items i ON i.id = e.item_id
                 JOIN inventory_locations l ON l.id = e.location_id
                 LEFT JOIN inventory_lots t ON t.id = e.lot_id
                WHERE e.occurred_at <= %s GROUP BY 1, 2, 3""",
            [as_of],
        )
        return {(a, b, c): q for a, b, c, q in cur.fetchall()}


def seed(catalog, rows=120):
    """Postings in time order, then backdated ones (occurred in the past, recorded now)."""
    items, locations, lots = catalog
    rng = random.Random(14)
    lots_of = {}
    for lot in lots:
        lots_of.setdefault(lot.item_id, []).append(lot.code)
    for n in range(rows):
        item = rng.choice(items)
        entries = [
            {
                "item": item.sku,
                "location": rng.choice(locations).code,
                "lot": rng.choice([*lots_of[item.id], None]),
                "qty": str(random_qty(rng)),
                "kind": "adjustment",
                # the last 20 are backdated into the first half of the month
                "occurred_at": (
                    START + timedelta(hours=6 * n)
                    if n < rows - 20
                    else START + timedelta(days=rng.randint(0, 15), minutes=rng.randint(0, 999))
                ).isoformat(),
            }
        ]
        ledger_entries_create(entries=entries)


def test_it_is_exact_against_the_ledger_sum_at_many_instants(client_acme, catalog):
    with schema_context("acme"):
        seed(catalog)
    instants = [
        START - timedelta(days=1),
        START,
        *(START + timedelta(days=d) for d in (3, 9, 15, 22, 29)),
    ]
    instants.append(timezone.now() + timedelta(days=1))
    for as_of in instants:
        with schema_context("acme"):
            expected = ledger_sums(as_of)
            page_rows = {
                (b.item.sku, b.location.code, b.lot.code if b.lot_id else None): b.qty_at
                for b in with_qty_as_of(
                    Balance.objects.select_related("item", "location", "lot"), as_of
                )
            }
        got = {}
        cursor = None
        while True:
            params = {"as_of": as_of.isoformat(), "page_size": 200}
            if cursor:
                params["cursor"] = cursor
            body = client_acme.get("/api/balances", params)
            assert body.status_code == 200, body.content
            data = body.json()
            got.update(
                {(r["item"], r["location"], r["lot"]): Decimal(r["qty"]) for r in data["results"]}
            )
            cursor = data["next_cursor"]
            if not cursor:
                break
        assert got == expected, as_of
        assert page_rows == expected, as_of
    assert expected  # the last instant (tomorrow) lists every key: the current balances
    with schema_context("acme"):
        assert expected == {
            (b.item.sku, b.location.code, b.lot.code if b.lot_id else None): b.qty_canonical
            for b in Balance.objects.select_related("item", "location", "lot")
        }


def test_a_backdated_entry_changes_the_past_balance(client_acme, catalog):
    items, locations, _ = catalog
    key = {"item": items[0].sku, "location": locations[0].code}
    with schema_context("acme"):
        ledger_entries_create(
            entries=[
                key
                | {
                    "qty": "10",
                    "kind": "receipt",
                    "occurred_at": (START + timedelta(days=1)).isoformat(),
                }
            ]
        )
        # Recorded now, occurred on day 2: it belongs to day 3's balance.
        ledger_entries_create(
            entries=[
                key
                | {
                    "qty": "-4",
                    "kind": "issue",
                    "occurred_at": (START + timedelta(days=2)).isoformat(),
                }
            ]
        )

    def at(day):
        body = client_acme.get(
            "/api/balances", {"as_of": (START + timedelta(days=day)).isoformat(), **key}
        ).json()
        return [r["qty"] for r in body["results"]]

    assert at(0) == []  # the key did not exist yet
    assert at(1) == ["10.000000"]  # at the receipt's instant: included (occurred_at <= as_of)
    assert at(3) == ["6.000000"]


def test_a_bad_as_of_is_a_400_naming_the_field(client_acme, catalog):
    response = client_acme.get("/api/balances", {"as_of": "2026-02-30T00:00:00Z"})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["as_of"]
