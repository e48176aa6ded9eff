"""Concurrent writers and backfill under concurrent writes: exact sums, no deadlock.
These tests commit for real (other connections must see the data); the `committed` fixture
empties the tenant tables afterwards."""

from __future__ import annotations

import random
import threading
from decimal import Decimal

import psycopg
from django_tenants.utils import schema_context

from inventory.services.backfill import balances_backfill
from tests.inventory.helpers import (
    balance_mismatches,
    count_rows,
    make_catalog,
    random_keys,
    random_qty,
)

INSERT = (
    "INSERT INTO inventory_ledger (item_id, location_id, lot_id, qty_canonical, kind, reference, "
    "occurred_at, recorded_at, recorded_by) VALUES {values}"
)


def insert_rows(conn: psycopg.Connection, rows) -> None:
    values = ", ".join(["(%s, %s, %s, %s, 'adjustment', '', now(), now(), '')"] * len(rows))
    conn.execute(INSERT.format(values=values), [v for row in rows for v in row])
    conn.commit()


def run_writers(committed, schema: str, jobs: list[list[list[tuple]]]) -> list[BaseException]:
    """One thread per job; each job is a list of transactions, each a list of rows."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def work(transactions):
        try:
            with committed.connect(schema) as conn:
                start.wait()
                for rows in transactions:
                    insert_rows(conn, rows)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            errors.append(err)

    threads = [threading.Thread(target=work, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer hung (deadlock?)"
    return errors


def test_it_is_exact_with_concurrent_writers_on_one_hot_key(committed):
    with schema_context("acme"):
        items, locations, _ = make_catalog(items=1, locations=1, lots_per_item=0)
    key = (items[0].id, locations[0].id, None)
    jobs = [[[(*key, Decimal(f"{w + 1}.{n:03d}"))] for n in range(150)] for w in range(6)]
    errors = run_writers(committed, "acme", jobs)
    assert errors == []
    expected = sum(row[3] for job in jobs for tx in job for row in tx)
    with committed.connect("acme") as conn:
        assert conn.execute("SELECT qty_canonical FROM inventory_balances").fetchall() == [
            (expected,)
        ]
    assert count_rows("acme", "inventory_ledger") == 900


def test_it_is_exact_and_deadlock_free_with_concurrent_mixed_key_batches(committed):
    with schema_context("acme"):
        items, locations, lots = make_catalog(items=8, locations=3, lots_per_item=1)
    keys = random_keys(items, locations, lots, 40, seed=3)
    jobs = []
    for w in range(6):
        rng = random.Random(w)
        # Each transaction touches many keys in a random order: without the trigger's sorted
        # upsert, two writers would lock the same balance rows in opposite orders.
        jobs.append([[(*rng.choice(keys), random_qty(rng)) for _ in range(25)] for _ in range(40)])
    errors = run_writers(committed, "acme", jobs)
    assert errors == [], [str(e) for e in errors]
    assert count_rows("acme", "inventory_ledger") == 6 * 40 * 25
    assert balance_mismatches("acme") == []


def test_backfill_is_exact_while_others_insert(committed):
    with schema_context("acme"):
        items, locations, lots = make_catalog(items=60, locations=4, lots_per_item=2)
    keys = random_keys(items, locations, lots, 400, seed=5)
    rng = random.Random(5)
    with committed.connect("acme") as conn:
        insert_rows(conn, [(*rng.choice(keys), random_qty(rng)) for _ in range(3000)])
        # Knock the balances off (as if the table were added after the ledger): trigger off.
        conn.execute(
            "ALTER TABLE inventory_ledger DISABLE TRIGGER inventory_ledger_balance_trigger"
        )
        insert_rows(conn, [(*rng.choice(keys), random_qty(rng)) for _ in range(500)])
        conn.execute("ALTER TABLE inventory_ledger ENABLE TRIGGER inventory_ledger_balance_trigger")
        conn.commit()
    assert balance_mismatches("acme") != []

    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(seed):
        r = random.Random(seed)
        try:
            with committed.connect("acme") as c:
                while not stop.is_set():
                    insert_rows(
                        c, [(*r.choice(keys), random_qty(r)) for _ in range(r.randint(1, 20))]
                    )
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    try:
        progress = []
        with schema_context("acme"):
            result = balances_backfill(
                chunk_items=7, progress=lambda d, t, m: progress.append((d, t))
            )
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert errors == []
    assert result.chunks == progress[-1][0] == progress[-1][1] >= 8
    assert result.ledger_rows >= 3500
    assert balance_mismatches("acme") == []
    # Running it again changes nothing.
    with schema_context("acme"):
        again = balances_backfill()
    assert again.balance_rows_written == 0 and again.balance_rows_removed == 0
