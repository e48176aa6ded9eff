"""The no-negative stock policy (issue 14): off by default; when on, the balance trigger refuses a
posting (INSERT or COPY) that would leave a key below zero, whole, with a 409 naming each key, its
balance and the shortfall; race-free across committed connections; checked by validate_migration
and put back by repair_balances after the guide's rollback SQL."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from inventory.models import InventorySettings, LedgerEntry
from inventory.services.posting import ledger_entries_create
from inventory.services.stock_policy import InsufficientStock, policy_get, policy_set
from inventory.services.validation import migration_validate
from inventory.sql import read_sql
from tests.inventory.helpers import balance_mismatches, count_rows, make_catalog
from tests.inventory.test_repair import guide_rollback_by_hand

# No module-wide django_db mark: the concurrent test must not run inside the test transaction
# (its rows have to commit); every other test asks for `db` through its fixtures.

@pytest.fixture
def client_acme(acme_key):
    return Client(HTTP_HOST="acme.localhost", headers={"X-Api-Key": acme_key})


def post(client, path, data):
    return client.post(path, json.dumps(data), content_type="application/json")


def entry(item, location, qty, kind="issue", lot=None):
    return {"item": item.sku, "location": location.code, "qty": qty, "kind": kind} | (
        {"lot": lot.code} if lot else {}
    )


def qty_of(item, location, lot=None) -> Decimal | None:
    from inventory.models import Balance

    row = Balance.objects.filter(item=item, location=location, lot=lot).first()
    return row.qty_canonical if row else None


def test_it_is_off_by_default_and_allows_negative_stock(catalog):
    items, locations, _ = catalog
    assert InventorySettings.objects.get().no_negative_stock is False
    assert policy_get() is False
    ledger_entries_create(entries=[entry(items[0], locations[0], "-5")])
    assert qty_of(items[0], locations[0]) == Decimal("-5")


def test_it_refuses_an_issue_below_zero_with_a_409_naming_key_balance_and_shortfall(
    client_acme, catalog
):
    items, locations, lots = catalog
    lot = lots[0]  # of items[0]
    with schema_context("acme"):
        ledger_entries_create(entries=[entry(items[0], locations[0], "10", "receipt", lot)])
        policy_set(no_negative_stock=True, by="test")
        before = LedgerEntry.objects.count()
    response = post(client_acme, "/api/ledger", entry(items[0], locations[0], "-12", lot=lot))
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "insufficient_stock"
    assert error["shortfalls"] == [
        {
            "item": items[0].sku,
            "location": locations[0].code,
            "lot": lot.code,
            "balance": "10.000000",
            "shortfall": "2.000000",
        }
    ]
    with schema_context("acme"):
        assert LedgerEntry.objects.count() == before
        assert qty_of(items[0], locations[0], lot) == Decimal("10")
    # Exactly the balance is allowed, and leaves zero.
    response = post(client_acme, "/api/ledger", entry(items[0], locations[0], "-10", lot=lot))
    assert response.status_code == 201, response.content
    with schema_context("acme"):
        assert qty_of(items[0], locations[0], lot) == Decimal("0")


def test_it_refuses_the_whole_batch_and_names_every_short_key(client_acme, catalog):
    items, locations, _ = catalog
    with schema_context("acme"):
        ledger_entries_create(entries=[entry(items[1], locations[1], "3", "receipt")])
        policy_set(no_negative_stock=True)
        before = LedgerEntry.objects.count()
    body = {
        "entries": [
            entry(items[0], locations[0], "7", "receipt"),  # fine on its own
            entry(items[1], locations[1], "-4"),  # 3 on hand: short by 1
            entry(items[2], locations[2], "-0.5"),  # nothing on hand: a new key
        ],
        "idempotency_key": "policy-batch-1",
    }
    response = post(client_acme, "/api/ledger", body)
    assert response.status_code == 409, response.content
    shortfalls = response.json()["error"]["shortfalls"]
    assert [(s["item"], s["balance"], s["shortfall"]) for s in shortfalls] == [
        (items[1].sku, "3.000000", "1.000000"),
        (items[2].sku, "0.000000", "0.500000"),
    ]
    with schema_context("acme"):
        assert LedgerEntry.objects.count() == before  # the receipt was not written either
        assert qty_of(items[0], locations[0]) is None
        assert qty_of(items[2], locations[2]) is None
        from inventory.models import Posting

        assert not Posting.objects.filter(idempotency_key="policy-batch-1").exists()
        assert balance_mismatches("acme") == []


def test_it_allows_a_receipt_into_a_balance_that_was_already_negative(catalog):
    items, locations, _ = catalog
    ledger_entries_create(entries=[entry(items[0], locations[0], "-10")])
    policy_set(no_negative_stock=True)
    ledger_entries_create(entries=[entry(items[0], locations[0], "4", "receipt")])
    assert qty_of(items[0], locations[0]) == Decimal("-6")
    with pytest.raises(InsufficientStock):
        ledger_entries_create(entries=[entry(items[0], locations[0], "-1")])


def test_it_refuses_a_copy_that_would_go_negative(catalog):
    items, locations, _ = catalog
    policy_set(no_negative_stock=True)
    with pytest.raises(psycopg.errors.CheckViolation) as err:
        with connection.cursor() as cursor, cursor.cursor.copy(
            "COPY inventory_ledger (item_id, location_id, qty_canonical, kind, reference, "
            "occurred_at, recorded_at, recorded_by) FROM STDIN"
        ) as copy:
            now = timezone.now()
            copy.write_row((items[0].id, locations[0].id, "5", "receipt", "", now, now, ""))
            copy.write_row((items[0].id, locations[0].id, "-6", "issue", "", now, now, ""))
    assert err.value.diag.constraint_name == "inventory_no_negative_stock"
    assert json.loads(err.value.diag.message_detail)[0]["shortfall"] == "1.000000"


def test_it_lets_only_one_of_two_concurrent_issues_of_8_against_10_succeed(committed):
    with schema_context("acme"):
        items, locations, _ = make_catalog(items=1, locations=1, lots_per_item=0, prefix="NP")
        ledger_entries_create(entries=[entry(items[0], locations[0], "10", "receipt")])
        policy_set(no_negative_stock=True)
    item_id, location_id = items[0].id, locations[0].id
    insert = (
        "INSERT INTO inventory_ledger (item_id, location_id, qty_canonical, kind, reference, "
        "occurred_at, recorded_at, recorded_by) VALUES (%s, %s, -8, 'issue', '', now(), now(), '')"
    )
    first = committed.connect("acme")
    second = committed.connect("acme")
    try:
        first.execute(insert, [item_id, location_id])  # holds the balance row's lock
        outcome = {}

        def other():
            try:
                second.execute(insert, [item_id, location_id])  # waits for `first`
                second.commit()
                outcome["second"] = "committed"
            except psycopg.errors.CheckViolation as err:
                second.rollback()
                outcome["second"] = err.diag.message_detail

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(timeout=1)
        assert thread.is_alive(), "the second issue did not wait for the first one's lock"
        first.commit()
        thread.join(timeout=30)
        assert not thread.is_alive()
        refused = json.loads(outcome["second"])
        assert [(k["balance"], k["shortfall"]) for k in refused] == [("2.000000", "6.000000")]
        # And the other way round: both started together from threads, one wins.
        results = []
        start = threading.Barrier(2)

        def issue(conn):
            start.wait()
            try:
                conn.execute(insert.replace("-8", "-1.5"), [item_id, location_id])
                conn.commit()
                results.append("ok")
            except psycopg.errors.CheckViolation:
                conn.rollback()
                results.append("refused")

        threads = [threading.Thread(target=issue, args=(c,)) for c in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(results) == ["ok", "refused"]  # 2 on hand: one 1.5 fits, two do not
        assert count_rows("acme", "inventory_ledger") == 3
        with schema_context("acme"):
            assert qty_of(items[0], locations[0]) == Decimal("0.5")
        assert balance_mismatches("acme") == []
    finally:
        first.close()
        second.close()
        with schema_context("acme"):
            policy_set(no_negative_stock=False)


def test_validate_migration_checks_the_policy_objects(acme):
    assert migration_validate(schema="acme").ok
    with connection.cursor() as cur:
        cur.execute("DELETE FROM acme.inventory_settings")
    report = migration_validate(schema="acme")
    failed = [c.name for c in report.failed]
    assert failed == ["No-negative stock policy is in place"]
    with connection.cursor() as cur:
        cur.execute("SELECT set_config('search_path', 'acme, public', true)")
        cur.execute(read_sql("v3_balance_function_pinned.sql"))
        cur.execute("INSERT INTO acme.inventory_settings (id) VALUES (true)")
    connection.set_schema_to_public()
    report = migration_validate(schema="acme")
    assert [c.detail for c in report.failed] == [
        "update_inventory_balance() does not check the no-negative policy (before v5); "
        "run manage.py repair_balances --schema acme"
    ]


def test_it_still_refuses_after_the_guides_rollback_sql_and_the_repair(acme):
    with schema_context("acme"):
        items, locations, _ = make_catalog(items=1, locations=1, lots_per_item=0, prefix="RB")
        ledger_entries_create(entries=[entry(items[0], locations[0], "2", "receipt")])
        policy_set(no_negative_stock=True)
    guide_rollback_by_hand()
    call_command("repair_balances", "--schema", "acme")
    assert migration_validate(schema="acme").ok
    with schema_context("acme"):
        assert policy_get() is True  # the setting outlived the rollback
        with pytest.raises(InsufficientStock) as err:
            ledger_entries_create(entries=[entry(items[0], locations[0], "-3")])
        assert err.value.shortfalls[0]["shortfall"] == "1.000000"
        assert qty_of(items[0], locations[0]) == Decimal("2")


def test_an_import_that_would_go_negative_is_a_409_and_imports_nothing(catalog):
    from inventory.services.importer import ledger_import_csv

    items, locations, _ = catalog
    policy_set(no_negative_stock=True)
    text = (
        "sku,location,qty,kind\n"
        f"{items[0].sku},{locations[0].code},5,receipt\n"
        f"{items[0].sku},{locations[0].code},-7,issue\n"
    )
    before = LedgerEntry.objects.count()
    with pytest.raises(InsufficientStock) as err:
        ledger_import_csv(text=text)
    assert err.value.status == 409
    assert err.value.shortfalls == [
        {
            "item": items[0].sku,
            "location": locations[0].code,
            "lot": None,
            "balance": "0.000000",
            "shortfall": "2.000000",
        }
    ]
    assert LedgerEntry.objects.count() == before
