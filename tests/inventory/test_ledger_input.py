"""Bad input to the ledger (issue 17): every value below is refused by the posting service with a
field error, before anything is written, and never as a ValueError, a database error or a 500.
The same rules hold for the importer (test_import.py) because both use ledger_rows."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection

from inventory.models import Balance, LedgerEntry, Posting
from inventory.services.errors import ValidationFailed
from inventory.services.ledger_rows import (
    LedgerRowInput,
    parse_occurred_at,
    parse_quantity,
    parse_timestamp,
)
from inventory.services.posting import ledger_entries_create
from tests.inventory.helpers import make_catalog

pytestmark = pytest.mark.django_db

ARABIC_INDIC_12 = "\u0661\u0662"
FULL_WIDTH_12 = "\uff11\uff12"
NOT_DECIMAL = "is not a decimal number"
OFFSET = "the UTC offset must be between -15:59 and +15:59"

BAD_ENTRY_VALUES = [
    # quantities: overflow of Python's decimal context, PostgreSQL's refusal, lookalikes
    ("qty", "1e999999999", NOT_DECIMAL),
    ("qty", "1e+999999999999999999", NOT_DECIMAL),
    ("qty", "-1e-999999999", NOT_DECIMAL),
    ("qty", "1E3", NOT_DECIMAL),
    ("qty", "1_000", NOT_DECIMAL),
    ("qty", "+5", NOT_DECIMAL),
    ("qty", " 5", NOT_DECIMAL),
    ("qty", ARABIC_INDIC_12, NOT_DECIMAL),
    ("qty", FULL_WIDTH_12, NOT_DECIMAL),
    ("qty", "5.", NOT_DECIMAL),
    ("qty", ".5", NOT_DECIMAL),
    ("qty", "1" * 41, "at most 40 characters"),
    ("qty", Decimal("1e999999999"), "too many digits"),
    ("qty", Decimal("-1e-999999999"), "at most 6 decimal places"),
    ("qty", [], "must be a decimal string, not a list"),
    ("qty", {"value": 1}, "must be a decimal string, not an object"),
    # occurred_at: impossible dates and times, offsets PostgreSQL's timestamptz refuses
    ("occurred_at", "2026-02-30T00:00:00", "is not a real date-time"),
    ("occurred_at", "2026-13-01T00:00:00", "is not a real date-time"),
    ("occurred_at", "2026-01-01T25:00:00", "is not a real date-time"),
    ("occurred_at", "2026-01-01T00:00:00+99:00", OFFSET),
    ("occurred_at", "2026-01-01T00:00:00-24:00", OFFSET),
    ("occurred_at", "2026-01-01T00:00:00-16:59", OFFSET),
    ("occurred_at", "2026-01-01T00:00:00+23:00", OFFSET),
    ("occurred_at", "2026-01-01T00:00:00+1600", OFFSET),
    (
        "occurred_at",
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=16))),
        OFFSET,
    ),
    ("occurred_at", "9999-12-31T23:00:00-05:00", "out of range"),
    ("occurred_at", "0001-01-01T00:00:00+05:00", "out of range"),
    ("occurred_at", "\u0662\u0660\u0662\u0666-01-01T00:00:00", "ISO 8601"),
    ("occurred_at", "2026-01-01T00:00:00\x00", "ISO 8601"),
    ("occurred_at", 20260101, "must be a string, not a number"),
    ("occurred_at", True, "must be a string, not a boolean"),
    # wrong types are refused, not coerced
    ("reference", [], "must be a string, not a list"),
    ("reference", 5, "must be a string, not a number"),
    ("reference", False, "must be a string, not a boolean"),
    ("item", ["T-0000"], "must be a string, not a list"),
    ("item", 123, "must be a string, not a number"),
    ("location", True, "must be a string, not a boolean"),
    ("lot", 7, "must be a string, not a number"),
    ("kind", ["receipt"], "unknown movement kind 'a list'"),
    # lone surrogates and NUL characters cannot be stored (nor encoded as UTF-8)
    ("reference", "\ud800", "lone surrogates"),
    ("reference", "PO-\x00-1", "NUL characters"),
    ("item", "\ud800", "lone surrogates"),
    ("item", "T-\x00", "NUL characters"),
    ("item", "x" * 65, "at most 64 characters"),
    ("location", "\udfff", "lone surrogates"),
    ("lot", "\ud800", "lone surrogates"),
]


@pytest.fixture
def cat(catalog):
    items, locations, lots = catalog
    return {"item": items[0].sku, "location": locations[0].code}


def counts():
    return LedgerEntry.objects.count(), Posting.objects.count(), Balance.objects.count()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    BAD_ENTRY_VALUES,
    ids=[f"{f}={v!r}"[:60] for f, v, _ in BAD_ENTRY_VALUES],
)
def test_it_refuses_a_bad_value_with_a_field_error_and_writes_nothing(cat, field, value, message):
    entry = {"item": cat["item"], "location": cat["location"], "qty": "1.5", "kind": "receipt"}
    before = counts()
    with pytest.raises(ValidationFailed) as err:
        ledger_entries_create(entries=[entry | {field: value}], idempotency_key="bad-1")
    assert err.value.code == "validation_failed" and err.value.status == 400
    assert list(err.value.fields) == [f"entries[0].{field}"], err.value.fields
    assert any(message in m for m in err.value.fields[f"entries[0].{field}"]), err.value.fields
    assert counts() == before == (0, 0, 0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [f for f in BAD_ENTRY_VALUES if f[0] in ("qty", "occurred_at", "reference", "item")][::4],
)
def test_it_refuses_the_same_values_as_a_typed_row(cat, field, value, message):
    row = LedgerRowInput(
        **({"item": cat["item"], "location": cat["location"], "qty": "1.5", "kind": "receipt"})
        | {field: value}
    )
    with pytest.raises(ValidationFailed) as err:
        ledger_entries_create(entries=[row])
    assert any(message in m for m in err.value.fields[f"entries[0].{field}"]), err.value.fields
    assert LedgerEntry.objects.count() == 0


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (False, "must be a string, not a boolean"),
        (0, "must be a string, not a number"),
        ([], "must be a string, not a list"),
        ("\ud800", "lone surrogates"),
        ("po-\x00", "NUL characters"),
        ("k" * 201, "at most 200 characters"),
    ],
)
def test_it_refuses_a_bad_idempotency_key_instead_of_coercing_it(cat, key, message):
    entry = {"item": cat["item"], "location": cat["location"], "qty": "1", "kind": "receipt"}
    with pytest.raises(ValidationFailed) as err:
        ledger_entries_create(entries=[entry], idempotency_key=key)
    assert list(err.value.fields) == ["idempotency_key"]
    assert any(message in m for m in err.value.fields["idempotency_key"]), err.value.fields
    # false must not have become the shared key "False"
    assert counts() == (0, 0, 0) and not Posting.objects.filter(idempotency_key="False").exists()


def test_it_refuses_lone_surrogates_quickly_and_before_any_query(cat, django_assert_num_queries):
    entry = {"item": "\ud800", "location": cat["location"], "qty": "1", "kind": "receipt"}
    started = time.monotonic()
    with django_assert_num_queries(0), pytest.raises(ValidationFailed) as err:
        ledger_entries_create(
            entries=[entry | {"reference": "\udc00" * 200}], idempotency_key="\ud800"
        )
    assert time.monotonic() - started < 0.5
    assert list(err.value.fields) == ["idempotency_key"]
    with django_assert_num_queries(0), pytest.raises(ValidationFailed) as err:
        ledger_entries_create(entries=[entry | {"reference": "\udc00" * 200}])
    assert set(err.value.fields) == {"entries[0].item", "entries[0].reference"}


def test_it_accepts_the_edges_of_what_postgresql_stores_as_dicts_and_typed_rows(cat):
    """The stricter rules still take every edge value (and a LedgerRowInput beside dicts)."""
    entries = [
        {"item": cat["item"], "location": cat["location"], "kind": "receipt"} | over
        for over in (
            {"qty": "999999999999.999999", "occurred_at": "2026-01-01T00:00:00+15:59"},
            {"qty": "-999999999999.999999", "occurred_at": "2026-01-01T00:00:00-15:59"},
            {"qty": "0.000001", "occurred_at": "2026-06-30T23:59:59.999999Z"},
            {"qty": "00012.500000", "occurred_at": datetime(2026, 1, 1, tzinfo=UTC)},
            {"qty": Decimal("1E+3")},
            {"qty": 7},
        )
    ]
    typed = LedgerRowInput(item=cat["item"], location=cat["location"], qty="-0.5", kind="issue")
    result = ledger_entries_create(entries=[*entries, typed])
    assert [e.qty_canonical for e in LedgerEntry.objects.order_by("id")] == [
        Decimal("999999999999.999999"),
        Decimal("-999999999999.999999"),
        Decimal("0.000001"),
        Decimal("12.5"),
        Decimal("1000"),
        Decimal("7"),
        Decimal("-0.5"),
    ]
    first = LedgerEntry.objects.get(id=result.entries[0].id)
    assert first.occurred_at == datetime(2025, 12, 31, 8, 1, tzinfo=UTC)


def test_a_posting_that_would_overflow_a_balance_is_a_field_error(cat):
    """With a balance column of NUMERIC(18,6) (before the widening, or a schema rolled back to
    it) two maximal postings to one key overflow it: a 400, nothing written, the key still
    usable. (The ALTER is rolled back with the test.)"""
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE inventory_balances ALTER COLUMN qty_canonical TYPE numeric(18,6)"
        )
    entry = {
        "item": cat["item"],
        "location": cat["location"],
        "qty": "999999999999",
        "kind": "receipt",
    }
    ledger_entries_create(entries=[entry])
    with pytest.raises(ValidationFailed) as err:
        ledger_entries_create(entries=[entry], idempotency_key="second")
    assert err.value.fields == {
        "entries": ["the resulting balance is too large for the balance table"]
    }
    assert counts() == (1, 1, 1)
    ledger_entries_create(entries=[entry | {"qty": "-5"}], idempotency_key="second")
    assert Balance.objects.get().qty_canonical == Decimal("999999999994")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("2026-02-30T00:00:00", "is not a real date-time"),
        ("2026-13-01T00:00:00", "is not a real date-time"),
        ("2026-01-01T25:00", "is not a real date-time"),
        ("2026-01-01T00:00:00+99:00", OFFSET),
        ("2026-01-01T00:00:00-24:00", OFFSET),
        ("yesterday", "ISO 8601"),
        ("", "ISO 8601"),
    ],
)
def test_parse_timestamp_for_query_strings_names_the_parameter(raw, message):
    with pytest.raises(ValidationFailed) as err:
        parse_timestamp(raw, field="since")
    assert list(err.value.fields) == ["since"]
    assert message in err.value.fields["since"][0]


def test_the_single_value_parsers_return_typed_values():
    assert parse_quantity("-0012.340") == Decimal("-12.34")
    assert parse_timestamp("2026-11-24T09:30:00+01:00") == datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    assert parse_timestamp("2026-11-24T09:30:00").tzinfo is not None  # naive → default zone
    assert parse_occurred_at(None) <= datetime.now(UTC)
    with pytest.raises(ValidationFailed) as err:
        parse_quantity("+5", field="entries[3].qty")
    assert list(err.value.fields) == ["entries[3].qty"]


# --- the NUL filter in config/middleware.py, through the real middleware stack -------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/json", b'{"item": "T-0000", "reference": "a\\u0000b"}'),
        ("application/vnd.api+json", b'{"item": "T-0000", "reference": "a\\u0000b"}'),
        ("application/vnd.api+json; charset=utf-8", b'{"reference": "a\\U0000b"}'),
        ("application/problem+json", b'{"reference": "a\x00b"}'),
        ("text/plain", b'{"reference": "a\x00b"}'),
        ("TEXT/JSON", b'{"reference": "a\\u0000b"}'),
    ],
)
def test_it_refuses_nul_in_any_json_like_body_with_a_400(api, acme_key, content_type, body):
    before = counts_public_safe()
    response = api.post(
        "/api/ledger", data=body, content_type=content_type, HTTP_X_API_KEY=acme_key
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_characters"
    assert counts_public_safe() == before


def test_it_refuses_nul_in_a_query_string_name(api, acme_key):
    response = api.get("/api/ledger?item%00=1", HTTP_X_API_KEY=acme_key)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_characters"


def test_a_page_with_nul_in_a_text_body_gets_a_plain_400(api):
    response = api.post("/login/", data=b"a\x00b", content_type="text/plain")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")


def test_a_multipart_body_to_the_api_is_a_json_4xx_not_a_500(api, acme_key):
    response = api.post(
        "/api/ledger", data={"item": "T-0000", "qty": "1"}, HTTP_X_API_KEY=acme_key
    )  # the test client sends a dict as multipart/form-data
    assert 400 <= response.status_code < 500
    assert "error" in response.json()
    assert counts_public_safe() == (0,)


def counts_public_safe() -> tuple[int]:
    from django_tenants.utils import schema_context

    with schema_context("acme"):
        return (LedgerEntry.objects.count(),)


def test_a_deeply_nested_json_body_is_a_400_but_a_large_flat_batch_posts(api, acme_key, acme):
    from django_tenants.utils import schema_context

    response = api.post(
        "/api/ledger", data=b"[" * 100_000, content_type="application/json", HTTP_X_API_KEY=acme_key
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"

    with schema_context("acme"):
        items, locations, _ = make_catalog(items=1, locations=1, lots_per_item=0)
    entry = {"item": items[0].sku, "location": locations[0].code, "qty": "1", "kind": "receipt"}
    body = json.dumps({"entries": [entry | {"reference": "[[[{"}] * 100})
    response = api.post(
        "/api/ledger", data=body, content_type="application/json", HTTP_X_API_KEY=acme_key
    )
    assert response.status_code == 201, response.content
    assert counts_public_safe() == (100,)
