"""The balance trigger keeps inventory_balances equal to the ledger sum for every key."""

from __future__ import annotations

import io
import random
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django_tenants.utils import schema_context

from inventory.models import Balance, LedgerEntry
from tests.inventory.helpers import (
    balance_mismatches,
    count_rows,
    make_catalog,
    random_keys,
    random_qty,
)

pytestmark = pytest.mark.django_db


def insert_sql(cursor, rows, table="inventory_ledger"):
    values = ", ".join(["(%s, %s, %s, %s, 'adjustment', '', now(), now(), '')"] * len(rows))
    params = [v for row in rows for v in row]
    cursor.execute(
        f"INSERT INTO {table} (item_id, location_id, lot_id, qty_canonical, kind, reference, occurred_at, "
        f"recorded_at, recorded_by) VALUES {values}",
        params,
    )


def test_it_updates_the_balance_on_a_single_insert(in_acme, catalog):
    items, locations, lots = catalog
    with connection.cursor() as cur:
        insert_sql(cur, [(items[0].id, locations[0].id, lots[0].id, Decimal("12.345678"))])
    balance = Balance.objects.get(item=items[0], location=locations[0], lot=lots[0])
    assert balance.qty_canonical == Decimal("12.345678")
    assert balance.last_ledger_id == LedgerEntry.objects.get().id


def test_it_is_exact_for_multi_row_inserts_over_many_keys(in_acme):
    items, locations, lots = make_catalog(items=40, locations=6, lots_per_item=3)
    rng = random.Random(7)
    keys = random_keys(items, locations, lots, 3000, seed=7)
    with connection.cursor() as cur:
        for start in range(0, len(keys), 500):  # several statements, each with repeated keys
            insert_sql(cur, [(*k, random_qty(rng)) for k in keys[start : start + 500]])
    assert count_rows("acme", "inventory_ledger") == 3000
    assert balance_mismatches("acme") == []
    assert Balance.objects.count() == len(set(keys))


def test_it_is_exact_for_copy(in_acme):
    items, locations, lots = make_catalog(items=30, locations=5, lots_per_item=2)
    rng = random.Random(11)
    keys = random_keys(items, locations, lots, 5000, seed=11)
    null = "\\N"
    buf = io.StringIO()
    for item_id, location_id, lot_id in keys:
        lot = lot_id if lot_id else null
        buf.write(
            f"{item_id}\t{location_id}\t{lot}\t{random_qty(rng)}\treceipt\t\t2026-01-01T00:00:00Z\t2026-01-01T00:00:00Z\t\n"
        )
    with (
        connection.cursor() as cur,
        cur.cursor.copy(
            "COPY inventory_ledger (item_id, location_id, lot_id, qty_canonical, kind, reference, occurred_at, "
            "recorded_at, recorded_by) FROM STDIN"
        ) as copy,
    ):
        copy.write(buf.getvalue())
    assert count_rows("acme", "inventory_ledger") == 5000
    assert balance_mismatches("acme") == []


def test_it_folds_no_lot_into_one_balance_row(in_acme, catalog):
    items, locations, _ = catalog
    with connection.cursor() as cur:
        insert_sql(cur, [(items[0].id, locations[0].id, None, Decimal("1"))])
        insert_sql(
            cur,
            [
                (items[0].id, locations[0].id, None, Decimal("2")),
                (items[0].id, locations[0].id, None, Decimal("3.5")),
            ],
        )
    rows = Balance.objects.filter(item=items[0], location=locations[0])
    assert rows.count() == 1
    assert rows.get().lot_id is None
    assert rows.get().qty_canonical == Decimal("6.5")


def test_it_allows_negative_balances_exactly(in_acme, catalog):
    items, locations, lots = catalog
    with connection.cursor() as cur:
        insert_sql(cur, [(items[1].id, locations[1].id, lots[2].id, Decimal("5.000001"))])
        insert_sql(cur, [(items[1].id, locations[1].id, lots[2].id, Decimal("-7.5"))])
    assert Balance.objects.get(
        item=items[1], location=locations[1], lot=lots[2]
    ).qty_canonical == Decimal("-2.499999")


def test_it_never_overflows_a_balance_whatever_accepted_postings_add_up_to(in_acme, catalog):
    # The largest quantity a ledger row holds, NUMERIC(18,6): 12 integer digits. Balances were
    # NUMERIC(18,6) too, so the second posting to one key failed, and every later one with it.
    items, locations, _ = catalog
    biggest = Decimal("999999999999.999999")
    with connection.cursor() as cur:
        insert_sql(cur, [(items[0].id, locations[0].id, None, Decimal("999999999999"))])
        insert_sql(cur, [(items[0].id, locations[0].id, None, Decimal("999999999999"))])
        # One statement of many rows to the same key, then further postings on top.
        insert_sql(cur, [(items[0].id, locations[0].id, None, biggest)] * 1000)
        insert_sql(cur, [(items[0].id, locations[0].id, None, Decimal("0.000001"))])
    balance = Balance.objects.get(item=items[0], location=locations[0], lot=None)
    assert balance.qty_canonical == Decimal("1999999999998") + 1000 * biggest + Decimal("0.000001")
    assert balance.qty_canonical == Decimal("1001999999999997.999001")
    assert balance_mismatches("acme") == []


def test_it_leaves_the_other_tenant_untouched(in_acme, catalog, globex):
    items, locations, _ = catalog
    with connection.cursor() as cur:
        insert_sql(cur, [(items[0].id, locations[0].id, None, Decimal("4"))])
    assert count_rows("globex", "inventory_balances") == 0
    assert count_rows("acme", "inventory_balances") == 1


def test_it_writes_the_ledgers_own_schema_under_a_foreign_search_path(acme, globex):
    with schema_context("acme"):
        items, locations, _ = make_catalog(prefix="A")
    with schema_context("globex"):
        g_items, g_locations, _ = make_catalog(prefix="G")
    with connection.cursor() as cur:
        # A session whose search_path points at globex inserts into acme's ledger by name.
        cur.execute("SET LOCAL search_path TO globex, public")
        insert_sql(
            cur, [(items[0].id, locations[0].id, None, Decimal("9"))], table="acme.inventory_ledger"
        )
        cur.execute("SELECT count(*) FROM inventory_balances")  # resolves to globex
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT qty_canonical FROM acme.inventory_balances")
        assert cur.fetchall() == [(Decimal("9.000000"),)]
        # And the other way round.
        cur.execute("SET LOCAL search_path TO acme, public")
        insert_sql(
            cur,
            [(g_items[0].id, g_locations[0].id, None, Decimal("-3"))],
            table="globex.inventory_ledger",
        )
        cur.execute("SELECT qty_canonical FROM globex.inventory_balances")
        assert cur.fetchall() == [(Decimal("-3.000000"),)]
        cur.execute("SELECT count(*) FROM acme.inventory_balances")
        assert cur.fetchone()[0] == 1
    assert balance_mismatches("acme") == [] and balance_mismatches("globex") == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE inventory_ledger SET qty_canonical = 1",
        "DELETE FROM inventory_ledger",
        "TRUNCATE inventory_ledger",
        "UPDATE inventory_ledger SET reference = 'x' WHERE id = -1",  # even when no row matches
    ],
)
def test_it_refuses_to_change_the_ledger(in_acme, catalog, statement):
    items, locations, _ = catalog
    with connection.cursor() as cur:
        insert_sql(cur, [(items[0].id, locations[0].id, None, Decimal("1"))])
        cur.execute(
            "SET CONSTRAINTS ALL IMMEDIATE"
        )  # Django's deferred FK checks would block TRUNCATE first
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cur,
    ):
        cur.execute(statement)
    assert count_rows("acme", "inventory_ledger") == 1


def test_it_refuses_ledger_edits_through_the_orm(in_acme, catalog):
    items, locations, _ = catalog
    with connection.cursor() as cur:
        insert_sql(cur, [(items[0].id, locations[0].id, None, Decimal("1"))])
    entry = LedgerEntry.objects.get()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).delete()


def test_it_refuses_zero_quantities_in_the_database(in_acme, catalog):
    items, locations, _ = catalog
    with (
        pytest.raises(DatabaseError, match="ledger_qty_nonzero"),
        transaction.atomic(),
        connection.cursor() as cur,
    ):
        insert_sql(cur, [(items[0].id, locations[0].id, None, Decimal("0"))])


def test_a_new_organisations_trigger_writes_its_own_balances(acme):
    from tenants.services import organization_create

    org, _ = organization_create(slug="newco", name="New Co")
    with schema_context(org.schema_name):
        items, locations, _ = make_catalog(prefix="N")
        with connection.cursor() as cur:
            insert_sql(cur, [(items[0].id, locations[0].id, None, Decimal("2"))])
            cur.execute("""SELECT p.pronamespace::regnamespace::text FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                           WHERE t.tgrelid = 'newco.inventory_ledger'::regclass AND t.tgname = 'inventory_ledger_balance_trigger'""")
            assert cur.fetchone()[0] == "newco"
    assert count_rows("newco", "inventory_balances") == 1
    assert count_rows("acme", "inventory_balances") == 0
