"""Posting: every validation error, all-or-nothing batches, idempotent retries."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from inventory.models import Balance, LedgerEntry, Posting
from inventory.selectors import balance_of
from inventory.services.errors import IdempotencyConflict, ValidationFailed
from inventory.services.posting import ledger_entries_create, ledger_entry_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def cat(catalog):
    items, locations, lots = catalog
    return {
        "item": items[0].sku,
        "location": locations[0].code,
        "lot": lots[0].code,
        "items": items,
        "locations": locations,
        "lots": lots,
    }


def entry(cat, **over):
    base = {"item": cat["item"], "location": cat["location"], "qty": "1.5", "kind": "receipt"}
    return base | over


def test_it_posts_one_entry_and_the_balance_follows(cat):
    result = ledger_entry_create(
        item=cat["item"],
        location=cat["location"],
        lot=cat["lot"],
        qty="2.25",
        kind="receipt",
        reference="PO-1",
        recorded_by="user:alice",
    )
    [e] = result.entries
    assert e.id and e.qty_canonical == Decimal("2.25") and e.lot.code == cat["lot"]
    assert e.recorded_by == "user:alice" and not result.replayed
    assert balance_of(item_id=e.item_id, location_id=e.location_id, lot_id=e.lot_id) == Decimal(
        "2.25"
    )


@pytest.mark.parametrize(
    ("override", "field", "message"),
    [
        ({"item": "NOPE"}, "item", "unknown item 'NOPE'"),
        ({"item": ""}, "item", "an item SKU is required"),
        ({"location": "NOWHERE"}, "location", "unknown location 'NOWHERE'"),
        ({"lot": "NO-LOT"}, "lot", "unknown lot 'NO-LOT'"),
        ({"qty": "0"}, "qty", "must not be zero"),
        ({"qty": 0}, "qty", "must not be zero"),
        ({"qty": "NaN"}, "qty", "NaN"),
        ({"qty": "Infinity"}, "qty", "infinite"),
        ({"qty": "-inf"}, "qty", "infinite"),
        ({"qty": "1.0000001"}, "qty", "at most 6 decimal places"),
        ({"qty": "1234567890123"}, "qty", "too many digits"),
        ({"qty": "abc"}, "qty", "not a decimal number"),
        ({"qty": None}, "qty", "required"),
        ({"qty": True}, "qty", "required"),
        ({"kind": "theft"}, "kind", "unknown movement kind 'theft'"),
        ({"occurred_at": "yesterday"}, "occurred_at", "ISO 8601"),
        ({"reference": "x" * 201}, "reference", "at most 200"),
        ({"colour": "red"}, "entry", "unknown field(s): colour"),
    ],
)
def test_it_names_the_field_that_is_wrong(cat, override, field, message):
    with pytest.raises(ValidationFailed) as err:
        ledger_entries_create(entries=[entry(cat, **override)])
    assert any(message in m for m in err.value.fields[f"entries[0].{field}"]), err.value.fields
    assert LedgerEntry.objects.count() == 0


def test_it_accepts_the_largest_allowed_quantity(cat):
    result = ledger_entries_create(
        entries=[entry(cat, qty="999999999999.999999"), entry(cat, qty="-0.000001")]
    )
    assert [e.qty_canonical for e in result.entries] == [
        Decimal("999999999999.999999"),
        Decimal("-0.000001"),
    ]


def test_it_rejects_an_inactive_item(cat):
    item = cat["items"][1]
    item.is_active = False
    item.save()
    with pytest.raises(ValidationFailed, match="1 of 1"):
        ledger_entries_create(entries=[entry(cat, item=item.sku)])


def test_it_rejects_a_lot_of_another_item(cat):
    other_lot = next(lot for lot in cat["lots"] if lot.item_id != cat["items"][0].id)
    with pytest.raises(ValidationFailed) as err:
        ledger_entries_create(entries=[entry(cat, lot=other_lot.code)])
    assert "entries[0].lot" in err.value.fields


def test_a_batch_is_all_or_nothing(cat):
    good = [entry(cat, qty=str(n)) for n in range(1, 6)]
    with pytest.raises(ValidationFailed) as err:
        ledger_entries_create(entries=[*good, entry(cat, qty="0"), entry(cat, kind="bad")])
    assert set(err.value.fields) == {"entries[5].qty", "entries[6].kind"}
    assert err.value.message.startswith("2 of 7 entries are invalid")
    assert (
        LedgerEntry.objects.count() == 0
        and Balance.objects.count() == 0
        and Posting.objects.count() == 0
    )


def test_it_refuses_a_batch_that_is_too_large_or_empty(cat, settings):
    settings.LEDGER_BATCH_MAX = 3
    with pytest.raises(ValidationFailed, match="Batch too large: 4 entries, at most 3"):
        ledger_entries_create(entries=[entry(cat)] * 4)
    with pytest.raises(ValidationFailed, match="No entries"):
        ledger_entries_create(entries=[])


def test_a_retry_with_the_same_key_returns_the_original_entries(cat):
    batch = [entry(cat, qty="1.5"), entry(cat, qty="-0.5", lot=cat["lot"])]
    first = ledger_entries_create(entries=batch, idempotency_key="req-42")
    again = ledger_entries_create(entries=[dict(e) for e in batch], idempotency_key="req-42")
    assert again.replayed and not first.replayed
    assert [e.id for e in again.entries] == [e.id for e in first.entries]
    assert LedgerEntry.objects.count() == 2 and Posting.objects.count() == 1
    assert sum(b.qty_canonical for b in Balance.objects.all()) == Decimal("1.0")


def test_a_retry_sending_the_quantity_as_a_number_is_the_same_request(cat):
    first = ledger_entries_create(entries=[entry(cat, qty="2.50")], idempotency_key="k")
    again = ledger_entries_create(entries=[entry(cat, qty=Decimal("2.5"))], idempotency_key="k")
    assert again.replayed and again.entries[0].id == first.entries[0].id


def test_the_same_key_with_another_payload_is_a_conflict(cat):
    ledger_entries_create(entries=[entry(cat, qty="1")], idempotency_key="req-7")
    with pytest.raises(IdempotencyConflict) as err:
        ledger_entries_create(entries=[entry(cat, qty="2")], idempotency_key="req-7")
    assert err.value.status == 409
    assert LedgerEntry.objects.count() == 1


def test_a_failed_request_does_not_burn_its_key(cat):
    with pytest.raises(ValidationFailed):
        ledger_entries_create(entries=[entry(cat, qty="0")], idempotency_key="req-9")
    result = ledger_entries_create(
        entries=[entry(cat, qty="0")] and [entry(cat, qty="3")], idempotency_key="req-9"
    )
    assert not result.replayed and LedgerEntry.objects.count() == 1


def test_it_rejects_a_bad_idempotency_key(cat):
    with pytest.raises(ValidationFailed, match="idempotency key"):
        ledger_entries_create(entries=[entry(cat)], idempotency_key="x" * 201)


def test_it_posts_in_four_queries_inside_a_transaction_whatever_the_batch_size(cat):
    # Inside a caller's transaction (here the test's): SAVEPOINT, one SELECT resolving every
    # code and the key, one INSERT of the Posting row and the entries, RELEASE. (Outside a
    # transaction it is two; tests/inventory/test_concurrency.py.)
    items, locations = cat["items"], cat["locations"]
    batch = [
        entry(cat, item=items[n % 5].sku, location=locations[n % 3].code, qty=str(n + 1))
        for n in range(100)
    ]
    for entries, key in (([entry(cat, lot=cat["lot"])], "one"), (batch, "hundred")):
        with CaptureQueriesContext(connection) as queries:
            result = ledger_entries_create(entries=entries, idempotency_key=key)
        assert len(queries) <= 4, [q["sql"][:80] for q in queries]
        assert len(result.entries) == len(entries) and not result.replayed
    assert LedgerEntry.objects.count() == 101 and Posting.objects.count() == 2


def test_it_returns_the_stored_rows_in_the_batch_order(cat):
    batch = [
        entry(cat, qty="1.5", reference="first"),
        entry(cat, item=cat["items"][1].sku, qty="-2", occurred_at="2026-01-02T03:04:05Z"),
        entry(cat, lot=cat["lot"], qty="3", kind="adjustment"),
    ]
    result = ledger_entries_create(entries=batch, recorded_by="user:bob")
    stored = list(
        LedgerEntry.objects.filter(posting_id=result.posting.id)
        .select_related("item", "location", "lot")
        .order_by("id")
    )
    fields = ("id", "item_id", "location_id", "lot_id", "qty_canonical", "kind", "reference")
    fields += ("occurred_at", "recorded_at", "recorded_by", "posting_id")
    assert [[getattr(e, f) for f in fields] for e in result.entries] == [
        [getattr(e, f) for f in fields] for e in stored
    ]
    assert [(e.item.sku, e.location.code, e.lot and e.lot.code) for e in result.entries] == [
        (e.item.sku, e.location.code, e.lot and e.lot.code) for e in stored
    ]
    assert [e.reference for e in result.entries] == ["first", "", ""]
    posting = Posting.objects.get()
    assert (posting.id, posting.entry_count, posting.recorded_by) == (
        result.posting.id,
        3,
        "user:bob",
    )
    assert posting.created_at == result.posting.created_at
    # A partially loaded item still loads the rest on access.
    assert result.entries[0].item.name == cat["items"][0].name


def test_a_replay_costs_no_insert(cat):
    ledger_entries_create(entries=[entry(cat)], idempotency_key="again")
    with CaptureQueriesContext(connection) as queries:
        again = ledger_entries_create(entries=[entry(cat)], idempotency_key="again")
    assert again.replayed
    assert not any(q["sql"].lstrip().startswith(("INSERT", "WITH")) for q in queries)
    assert LedgerEntry.objects.count() == 1


@pytest.mark.parametrize("key", ["import:sha256:abc", "  import:batch:nightly"])
def test_it_reserves_the_import_key_prefix_for_the_importer(cat, key):
    with pytest.raises(ValidationFailed) as err:
        ledger_entries_create(entries=[entry(cat)], idempotency_key=key)
    assert "reserved for import_ledger" in err.value.fields["idempotency_key"][0]
    assert LedgerEntry.objects.count() == 0 and Posting.objects.count() == 0


def test_the_api_refuses_an_import_key_in_the_header_and_the_body(cat, acme_key):
    client = Client(HTTP_HOST="acme.localhost", headers={"X-Api-Key": acme_key})
    one = json.dumps(entry(cat))
    header = client.post(
        "/api/ledger", one, content_type="application/json", headers={"Idempotency-Key": "import:x"}
    )
    body = client.post(
        "/api/ledger",
        json.dumps({"entries": [entry(cat)], "idempotency_key": "import:sha256:0"}),
        content_type="application/json",
    )
    for response in (header, body):
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert error["code"] == "validation_failed" and "idempotency_key" in error["fields"]
    assert LedgerEntry.objects.count() == 0 and Posting.objects.count() == 0
