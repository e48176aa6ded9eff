"""Builders and exactness checks shared by the inventory tests."""

from __future__ import annotations

import random
from decimal import Decimal

from django.db import connection

from inventory.models import Item, Location, Lot

TENANT_TABLES = (
    "inventory_ledger",
    "inventory_balances",
    "inventory_postings",
    "inventory_lots",
    "inventory_items",
    "inventory_locations",
)


def make_catalog(*, items: int = 5, locations: int = 3, lots_per_item: int = 2, prefix: str = "T"):
    """Items, locations and lots in the current schema."""
    item_objs = Item.objects.bulk_create(
        [Item(sku=f"{prefix}-{n:04d}", name=f"Test item {n}", unit="g") for n in range(items)]
    )
    loc_objs = Location.objects.bulk_create(
        [Location(code=f"{prefix}-LOC-{n}", name=f"Location {n}") for n in range(locations)]
    )
    lot_objs = Lot.objects.bulk_create(
        [
            Lot(item=i, code=f"{prefix}-LOT-{i.id}-{k}")
            for i in item_objs
            for k in range(lots_per_item)
        ]
    )
    return item_objs, loc_objs, lot_objs


def random_keys(items, locations, lots, count: int, seed: int = 1):
    """(item_id, location_id, lot_id|None) keys, including 'no lot' keys."""
    rng = random.Random(seed)
    lots_by_item: dict[int, list[int]] = {}
    for lot in lots:
        lots_by_item.setdefault(lot.item_id, []).append(lot.id)
    keys = []
    for _ in range(count):
        item = rng.choice(items)
        lot = rng.choice(lots_by_item.get(item.id, [None]) + [None])
        keys.append((item.id, rng.choice(locations).id, lot))
    return keys


def random_qty(rng: random.Random) -> Decimal:
    value = Decimal(rng.randint(-500000, 900000)) / Decimal(1000)
    return value if value != 0 else Decimal("0.001")


def balance_mismatches(schema: str, cursor=None) -> list[tuple]:
    """Keys where the balance differs from the ledger sum (missing rows count as differences)."""
    sql = f"""
        WITH sums AS (
            SELECT item_id, location_id, COALESCE(lot_id, 0) AS lot_key, sum(qty_canonical) AS qty
              FROM "{schema}".inventory_ledger GROUP BY 1, 2, 3)
        SELECT COALESCE(s.item_id, b.item_id), COALESCE(s.location_id, b.location_id),
               COALESCE(s.lot_key, b.lot_key), s.qty, b.qty_canonical
          FROM sums s
          FULL OUTER JOIN "{schema}".inventory_balances b
            ON b.item_id = s.item_id AND b.location_id = s.location_id AND b.lot_key = s.lot_key
         WHERE s.qty IS DISTINCT FROM b.qty_canonical"""
    if cursor is not None:
        cursor.execute(sql)
        return cursor.fetchall()
    with connection.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def count_rows(schema: str, table: str) -> int:
    with connection.cursor() as cur:
        cur.execute(f'SELECT count(*) FROM "{schema}".{table}')
        return cur.fetchone()[0]


def wipe_tenant(schema: str, cursor) -> None:
    """Empty a tenant's inventory tables after a test that committed. Replica role skips the
    append-only guard (this is the test harness, never product code)."""
    tables = ", ".join(f'"{schema}".{t}' for t in TENANT_TABLES)
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute("SET session_replication_role = replica")
    try:
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        cursor.execute("SET session_replication_role = DEFAULT")
