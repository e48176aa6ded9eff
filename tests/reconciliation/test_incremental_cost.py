"""An incremental reconciliation reads the new ledger rows, not the history of the keys they
touch (issue 18.6), and stays exact: it still finds a balance that is off, with the right sum."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django_tenants.utils import schema_context

from reconciliation.services import reconciliation_run
from tests.inventory.helpers import make_catalog

HISTORY = 20_000
INSERT = (
    "INSERT INTO inventory_ledger (item_id, location_id, lot_id, qty_canonical, kind, reference, "
    "occurred_at, recorded_at, recorded_by) "
    "SELECT %s, %s, NULL, 1, 'adjustment', '', now(), now(), '' FROM generate_series(1, %s)"
)


def _compare_reading(since: int):
    """balances_compare(since) and the inventory_ledger tuples it read (table and index
    fetches), counted by this transaction's statistics."""
    from inventory.balances import balances_compare

    sql = (
        "SELECT COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0) "
        "  FROM pg_stat_xact_user_tables WHERE relid = 'inventory_ledger'::regclass"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
        before = cursor.fetchone()[0]
        found = balances_compare(since=since)
        cursor.execute(sql)
        return found, cursor.fetchone()[0] - before


def test_it_reads_the_new_rows_not_the_touched_keys_history(committed):
    with schema_context("acme"):
        items, locations, _ = make_catalog(items=2, locations=1, lots_per_item=0)
    key = (items[0].id, locations[0].id)
    with committed.connect("acme") as conn:
        conn.execute(INSERT, [*key, HISTORY])
        history_xid = int(conn.execute("SELECT pg_current_xact_id()::text").fetchone()[0])
        conn.commit()
        conn.execute("ANALYZE inventory_ledger")  # what autovacuum does after such a load
        conn.commit()
    with schema_context("acme"):
        # The checkpoint covers transactions below the oldest one still running in the cluster:
        # another session's open transaction (other tests share this server) holds it back.
        for _ in range(40):
            full = reconciliation_run(mode="full")
            if full.watermark_xid > history_xid:
                break
            time.sleep(0.5)
        else:
            pytest.fail("a transaction elsewhere in the cluster stayed open for 20 s")
        assert full.differences_found == 0
    with committed.connect("acme") as conn:
        conn.execute(INSERT, [*key, 10])
        # A balance off by 3 (what reconciliation is for), in the same transaction.
        conn.execute(
            "UPDATE inventory_balances SET qty_canonical = qty_canonical + 3 WHERE item_id = %s",
            [key[0]],
        )
        conn.commit()
    with schema_context("acme"):
        found, read = _compare_reading(full.watermark_xid)
        assert read < 1_000, f"{read} ledger rows read for 10 new ones ({HISTORY} in the key)"
        assert found.keys_checked == 1
        # Exact: the whole key's ledger sum against its balance, not the new rows' alone.
        (row,) = found.rows
        assert (row[0], row[3], row[4]) == (key[0], Decimal(HISTORY + 10), Decimal(HISTORY + 13))

        run = reconciliation_run(mode="incremental")
        assert (run.keys_checked, run.differences_found) == (1, 1)

        # Without a checkpoint (as before it existed) the same comparison re-sums the history:
        # the measure above is a real one.
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM inventory_ledger_checkpoint_at")
        found_again, read_again = _compare_reading(full.watermark_xid)
        assert found_again.rows == found.rows
        assert read_again >= HISTORY


def test_it_ignores_a_checkpoint_of_a_ledger_since_emptied(committed):
    # A truncated (restored, wiped) ledger has a new file: its old checkpoint must not count.
    with schema_context("acme"):
        items, locations, _ = make_catalog(items=1, locations=1, lots_per_item=0)
        key = (items[0].id, locations[0].id)
        with committed.connect("acme") as conn:
            conn.execute(INSERT, [*key, 5])
            conn.commit()
        assert reconciliation_run(mode="full").differences_found == 0
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
            cursor.execute("TRUNCATE inventory_ledger, inventory_balances")
            cursor.execute("SET session_replication_role = DEFAULT")
        with committed.connect("acme") as conn:
            conn.execute(INSERT, [*key, 2])
            conn.commit()
        from inventory.balances import balances_compare

        assert balances_compare(since=0).rows == []  # ledger 2, balance 2: nothing stale added
