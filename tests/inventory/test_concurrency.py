"""Concurrent writers and backfill under concurrent writes: exact sums, no deadlock.
These tests commit for real (other connections must see the data); the `committed` fixture
empties the tenant tables afterwards."""

from __future__ import annotations

import random
import threading
import time
from decimal import Decimal

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from inventory.services.backfill import balances_backfill
from inventory.services.errors import IdempotencyConflict
from inventory.services.posting import ledger_entries_create
from tests.inventory.helpers import (
    balance_mismatches,
    count_rows,
    insert_rows,
    make_catalog,
    random_keys,
    random_qty,
)


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


def test_backfill_is_exact_while_others_insert(committed, background_writers):
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

    writers = background_writers("acme", keys, threads=3, max_rows=20)
    progress = []
    with schema_context("acme"):
        result = balances_backfill(chunk_items=7, progress=lambda d, t, m: progress.append((d, t)))
    writers.stop()
    assert writers.errors == []
    assert result.chunks == progress[-1][0] == progress[-1][1] >= 8
    assert result.ledger_rows >= 3500
    assert balance_mismatches("acme") == []
    # Running it again changes nothing.
    with schema_context("acme"):
        again = balances_backfill()
    assert again.balance_rows_written == 0 and again.balance_rows_removed == 0


# --- the posting service on its own connections (the API's path: no transaction around it) ---


def _in_thread(target, *args):
    """Run `target(*args)` in a thread with its own Django connection (closed afterwards);
    returns (thread, outcome list: [result] or [exception])."""
    outcome: list = []

    def work():
        try:
            with schema_context("acme"):
                outcome.append(target(*args))
        except BaseException as err:  # noqa: BLE001 - reported by the test
            outcome.append(err)
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    return thread, outcome


def _wait_for_lock_waiters(committed, count: int, timeout: float = 10) -> None:
    with committed.connect("acme", autocommit=True) as conn:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            ).fetchone()[0]
            if waiting >= count:
                return
            time.sleep(0.02)
    raise AssertionError("the later requests never waited for the first one's key")


def _one_entry(item, location, qty="1.5"):
    return [{"item": item.sku, "location": location.code, "qty": qty, "kind": "receipt"}]


def test_it_posts_in_two_queries_outside_a_transaction(committed):
    # The API calls the service in autocommit mode: one SELECT (codes and key), one INSERT
    # (Posting row and entries, balances by the trigger); the statement is the transaction,
    # so there is no BEGIN or COMMIT to pay for either.
    with schema_context("acme"):
        items, locations, lots = make_catalog(items=5, locations=3, lots_per_item=1)
        assert connection.get_autocommit() and not connection.in_atomic_block
        one = [_one_entry(items[0], locations[0])[0] | {"lot": lots[0].code}]
        hundred = [
            _one_entry(items[n % 5], locations[n % 3], qty=str(n + 1))[0] for n in range(100)
        ]
        for entries in (one, hundred):
            with CaptureQueriesContext(connection) as queries:
                result = ledger_entries_create(entries=entries, idempotency_key=f"k{len(entries)}")
            assert len(queries) == 2, [q["sql"][:80] for q in queries]
            assert len(result.entries) == len(entries)
    assert count_rows("acme", "inventory_ledger") == 101
    assert count_rows("acme", "inventory_postings") == 2
    assert balance_mismatches("acme") == []


def test_a_retry_waiting_on_a_concurrent_request_with_its_key_never_posts_twice(committed):
    with schema_context("acme"):
        items, locations, _ = make_catalog(items=1, locations=1, lots_per_item=0)
    entries = _one_entry(items[0], locations[0])
    release = threading.Event()

    def first_holding_its_transaction_open():
        with transaction.atomic():
            result = ledger_entries_create(entries=entries, idempotency_key="same")
            release.wait(30)
        return result

    first, first_out = _in_thread(first_holding_its_transaction_open)
    while not _posting_in_flight(committed):
        time.sleep(0.02)
    second, second_out = _in_thread(
        lambda: ledger_entries_create(entries=entries, idempotency_key="same")
    )
    third, third_out = _in_thread(
        lambda: ledger_entries_create(
            entries=_one_entry(items[0], locations[0], qty="9"), idempotency_key="same"
        )
    )
    _wait_for_lock_waiters(committed, 2)
    release.set()
    for t in (first, second, third):
        t.join(timeout=60)
    [posted], [replayed], [conflict] = first_out, second_out, third_out
    assert not posted.replayed and replayed.replayed
    assert [e.id for e in replayed.entries] == [e.id for e in posted.entries]
    assert isinstance(conflict, IdempotencyConflict), conflict
    assert count_rows("acme", "inventory_ledger") == 1
    assert count_rows("acme", "inventory_postings") == 1
    assert balance_mismatches("acme") == []


def test_a_request_waiting_on_a_key_that_rolls_back_posts_itself(committed):
    with schema_context("acme"):
        items, locations, _ = make_catalog(items=1, locations=1, lots_per_item=0)
    entries = _one_entry(items[0], locations[0])
    release = threading.Event()

    class Abandoned(Exception):
        pass

    def first_then_rolled_back():
        with transaction.atomic():
            ledger_entries_create(entries=entries, idempotency_key="retry-me")
            release.wait(30)
            raise Abandoned

    first, first_out = _in_thread(first_then_rolled_back)
    while not _posting_in_flight(committed):
        time.sleep(0.02)
    second, second_out = _in_thread(
        lambda: ledger_entries_create(entries=entries, idempotency_key="retry-me")
    )
    _wait_for_lock_waiters(committed, 1)
    release.set()
    for t in (first, second):
        t.join(timeout=60)
    assert isinstance(first_out[0], Abandoned)
    [result] = second_out
    assert not isinstance(result, BaseException), result
    assert not result.replayed and len(result.entries) == 1
    assert count_rows("acme", "inventory_ledger") == 1
    assert count_rows("acme", "inventory_postings") == 1
    assert balance_mismatches("acme") == []


def _posting_in_flight(committed) -> bool:
    """Some connection holds an uncommitted insert into the postings table."""
    with committed.connect("acme", autocommit=True) as conn:
        return bool(
            conn.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = 'inventory_postings' AND l.mode = 'RowExclusiveLock' "
                "AND l.pid <> pg_backend_pid()"
            ).fetchone()[0]
        )
