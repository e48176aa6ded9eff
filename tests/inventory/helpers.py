"""Builders and exactness checks shared by the inventory tests."""

from __future__ import annotations

import random
import threading
import time
from decimal import Decimal

import psycopg
from django.db import connection

from tests.factories import make_catalog  # noqa: F401  (re-exported: the inventory tests import it here)

TENANT_TABLES = (
    "inventory_ledger",
    "inventory_balances",
    "inventory_postings",
    "inventory_lots",
    "inventory_items",
    "inventory_locations",
)


LEDGER_INSERT = (
    "INSERT INTO inventory_ledger (item_id, location_id, lot_id, qty_canonical, kind, reference, "
    "occurred_at, recorded_at, recorded_by) VALUES {values}"
)


def insert_rows(conn: psycopg.Connection, rows) -> None:
    """(item_id, location_id, lot_id, qty) rows in one INSERT (one statement: the trigger locks
    their keys in sorted order, as for the posting service), committed."""
    values = ", ".join(["(%s, %s, %s, %s, 'adjustment', '', now(), now(), '')"] * len(rows))
    conn.execute(LEDGER_INSERT.format(values=values), [v for row in rows for v in row])
    if not conn.autocommit:
        conn.commit()


class BackgroundWriters:
    """Sessions that keep posting random rows to `keys` (1..max_rows per transaction) until
    stopped: what the exactness tests run beside a backfill, a reconciliation or a repair.
    Made by the `background_writers` fixture, which stops them before the data is wiped."""

    def __init__(self, committed, schema: str, keys, *, threads: int = 3, max_rows: int = 10):
        self.committed, self.schema, self.keys, self.max_rows = committed, schema, keys, max_rows
        self.errors: list[BaseException] = []
        self.rows = [0] * threads  # rows committed, per writer
        self.transactions = [0] * threads
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, args=(n,)) for n in range(threads)]
        for thread in self._threads:
            thread.start()

    def _work(self, n: int) -> None:
        rng = random.Random(n)
        try:
            with self.committed.connect(self.schema, autocommit=True) as conn:
                while not self._stop.is_set():
                    rows = [
                        (*rng.choice(self.keys), random_qty(rng))
                        for _ in range(rng.randint(1, self.max_rows))
                    ]
                    insert_rows(conn, rows)
                    self.rows[n] += len(rows)
                    self.transactions[n] += 1
        except BaseException as err:  # noqa: BLE001 - reported by the test
            self.errors.append(err)

    @property
    def written(self) -> int:
        return sum(self.rows)

    def wait_for(self, rows: int, timeout: float = 60) -> None:
        """Until the writers have committed `rows` rows in all."""
        deadline = time.monotonic() + timeout
        while self.written < rows:
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, f"writers stalled at {self.rows}"
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in self._threads), "a writer hung (deadlock?)"


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
