"""Transfers (issue 14): one posting, transfer_out and transfer_in summing to zero, one idempotency
key, all or nothing; refused with a field error for zero, the same place, another item or unit."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from inventory.models import Balance, Item, LedgerEntry
from inventory.services.posting import ledger_entries_create
from inventory.services.stock_policy import policy_set
from tests.inventory.helpers import balance_mismatches


@pytest.fixture
def client_acme(acme_key):
    return Client(HTTP_HOST="acme.localhost", headers={"X-Api-Key": acme_key})


def post(client, data, **headers):
    return client.post(
        "/api/transfers", json.dumps(data), content_type="application/json", headers=headers
    )


def qty(item, location, lot=None):
    row = Balance.objects.filter(item=item, location=location, lot=lot).first()
    return row.qty_canonical if row else None


def test_it_posts_two_legs_that_sum_to_zero_once_per_key(client_acme, catalog):
    items, locations, lots = catalog
    body = {
        "item": items[0].sku,
        "qty": "4.5",
        "from_location": locations[0].code,
        "to_location": locations[1].code,
        "from_lot": lots[0].code,
        "reference": "T-1",
    }
    response = post(client_acme, body, **{"Idempotency-Key": "tr-1"})
    assert response.status_code == 201, response.content
    legs = response.json()["entries"]
    assert [(e["kind"], e["location"], e["lot"], e["qty"]) for e in legs] == [
        ("transfer_out", locations[0].code, lots[0].code, "-4.500000"),
        ("transfer_in", locations[1].code, lots[0].code, "4.500000"),
    ]
    assert len({e["posting_id"] for e in legs}) == 1
    replay = post(client_acme, body, **{"Idempotency-Key": "tr-1"})
    assert replay.status_code == 200 and replay.json()["replayed"] is True
    with schema_context("acme"):
        assert LedgerEntry.objects.count() == 2
        assert qty(items[0], locations[0], lots[0]) == Decimal("-4.5")
        assert qty(items[0], locations[1], lots[0]) == Decimal("4.5")
        assert balance_mismatches("acme") == []
    changed = post(client_acme, body | {"qty": "5"}, **{"Idempotency-Key": "tr-1"})
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "idempotency_conflict"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"qty": "0"}, "qty"),
        ({"qty": "-3"}, "qty"),
        ({"to_location": "SAME"}, "to_location"),
        ({"to_item": "OTHER-UNIT"}, "to_item"),
        ({"to_item": "OTHER-SAME-UNIT"}, "to_item"),
        ({"to_location": "NOWHERE"}, "to_location"),
    ],
)
def test_it_refuses_a_bad_transfer_with_a_field_error_and_writes_nothing(
    client_acme, catalog, change, field
):
    items, locations, _ = catalog
    with schema_context("acme"):
        Item.objects.create(sku="OTHER-UNIT", name="in each", unit="ea")
        Item.objects.create(sku="OTHER-SAME-UNIT", name="in grams", unit="g")
    body = {
        "item": items[0].sku,
        "qty": "1",
        "from_location": locations[0].code,
        "to_location": locations[1].code,
    } | change
    if body["to_location"] == "SAME":
        body["to_location"] = locations[0].code
    response = post(client_acme, body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert list(error["fields"]) == [field]
    if change.get("to_item") == "OTHER-UNIT":
        assert "different units" in error["fields"]["to_item"][0]
    with schema_context("acme"):
        assert LedgerEntry.objects.count() == 0


def test_the_same_location_to_another_lot_is_a_transfer(catalog):
    from inventory.services.transfers import TransferInput, transfer_create

    items, locations, lots = catalog
    result = transfer_create(
        TransferInput(
            item=items[0].sku,
            qty="2",
            from_location=locations[0].code,
            to_location=locations[0].code,
            from_lot=lots[0].code,
            to_lot=lots[1].code,
        )
    )
    assert [e.lot_id for e in result.entries] == [lots[0].id, lots[1].id]


def test_it_is_all_or_nothing_under_the_no_negative_policy(client_acme, catalog):
    items, locations, _ = catalog
    with schema_context("acme"):
        ledger_entries_create(
            entries=[
                {"item": items[0].sku, "location": locations[0].code, "qty": "3", "kind": "receipt"}
            ]
        )
        policy_set(no_negative_stock=True)
    body = {
        "item": items[0].sku,
        "qty": "5",
        "from_location": locations[0].code,
        "to_location": locations[1].code,
    }
    response = post(client_acme, body)
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "insufficient_stock"
    assert error["shortfalls"] == [
        {
            "item": items[0].sku,
            "location": locations[0].code,
            "lot": None,
            "balance": "3.000000",
            "shortfall": "2.000000",
        }
    ]
    with schema_context("acme"):
        assert LedgerEntry.objects.count() == 1  # the receipt only: neither leg
        assert qty(items[0], locations[1]) is None
    assert post(client_acme, body | {"qty": "3"}).status_code == 201


def test_the_openapi_document_describes_transfers_and_as_of(api, acme):
    doc = api.get("/api/openapi.json", HTTP_HOST="acme.localhost").json()
    assert "/api/transfers" in doc["paths"]
    params = [p["name"] for p in doc["paths"]["/api/balances"]["get"]["parameters"]]
    assert "as_of" in params
    assert "shortfalls" in doc["components"]["schemas"]["ErrorBody"]["properties"]


# --- the pages: the item page's transfer form, the owner's policy, "as of" ----------------------


def test_the_item_page_transfers_once_per_form_and_shows_field_errors(as_acme_owner, catalog):
    items, locations, _ = catalog
    path = f"/orgs/acme/items/{items[0].id}/"
    page = as_acme_owner.get(path)
    assert page.status_code == 200 and b'id="transfer"' in page.content
    key = page.context["transfer_form"].initial["idempotency_key"]
    form = {
        "qty": "2",
        "from_location": locations[0].code,
        "to_location": locations[1].code,
        "idempotency_key": key,
    }
    done = as_acme_owner.post(path, form)
    assert done.status_code == 200 and b'id="transfer-done"' in done.content
    again = as_acme_owner.post(path, form)  # a double submit replays
    assert b"already posted" in again.content
    with schema_context("acme"):
        assert LedgerEntry.objects.count() == 2
    bad = as_acme_owner.post(path, form | {"to_location": locations[0].code, "idempotency_key": ""})
    assert bad.status_code == 400 and b'id="t-to_location-error"' in bad.content
    with schema_context("acme"):
        assert LedgerEntry.objects.count() == 2


def test_the_owner_sets_the_policy_on_the_balances_page_and_reads_balances_as_of(
    as_acme_owner, catalog
):
    from datetime import timedelta

    from django.utils import timezone

    from inventory.services.stock_policy import policy_get

    items, locations, _ = catalog
    now = timezone.now()
    with schema_context("acme"):
        ledger_entries_create(
            entries=[
                {
                    "item": items[0].sku,
                    "location": locations[0].code,
                    "qty": "5",
                    "kind": "receipt",
                    "occurred_at": (now - timedelta(days=2)).isoformat(),
                },
                {
                    "item": items[0].sku,
                    "location": locations[0].code,
                    "qty": "3",
                    "kind": "receipt",
                },
            ]
        )
    response = as_acme_owner.post("/orgs/acme/balances/", {"no_negative_stock": "on"})
    assert response.status_code == 200 and b'id="policy-saved"' in response.content
    with schema_context("acme"):
        assert policy_get() is True
    as_of = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    page = as_acme_owner.get("/orgs/acme/balances/", {"as_of": as_of})
    assert page.status_code == 200
    assert [b.qty_at for b in page.context["rows"]] == [Decimal("5")]
    item = as_acme_owner.get(f"/orgs/acme/items/{items[0].id}/", {"as_of": as_of})
    assert item.context["total"] == Decimal("5")
    bad = as_acme_owner.get("/orgs/acme/balances/", {"as_of": "yesterday"})
    assert bad.status_code == 400 and b'id="f-as_of-error"' in bad.content
