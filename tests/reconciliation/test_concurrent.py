"""Reconciliation while the ledger takes inserts: no false differences, and an incremental run
does not lose a transaction that commits after a later one."""

from __future__ import annotations

from decimal import Decimal

from django_tenants.utils import schema_context

from reconciliation.models import Discrepancy
from reconciliation.services import reconciliation_run
from tests.inventory.helpers import make_catalog, random_keys

INSERT = (
    "INSERT INTO inventory_ledger (item_id, location_id, lot_id, qty_canonical, kind, reference, occurred_at, "
    "recorded_at, recorded_by) VALUES (%s, %s, %s, %s, 'adjustment', '', now(), now(), '')"
)


def test_no_false_differences_while_inserts_run(committed, background_writers):
    with schema_context("acme"):
        items, locations, lots = make_catalog(items=30, locations=4, lots_per_item=2)
    keys = random_keys(items, locations, lots, 200, seed=9)
    writers = background_writers("acme", keys, threads=3, max_rows=10)
    runs = []
    with schema_context("acme"):
        for n in range(6):
            runs.append(reconciliation_run(mode="full" if n % 2 == 0 else "incremental"))
    writers.stop()
    assert writers.errors == []
    assert sum(writers.transactions) > 20, "the writers did not get going"
    assert [r.differences_found for r in runs] == [0] * 6
    assert Discrepancy.objects.count() == 0


def test_incremental_sees_a_transaction_that_commits_after_a_later_one(committed):
    with schema_context("acme"):
        items, locations, _ = make_catalog(items=3, locations=1, lots_per_item=0)
        baseline = reconciliation_run(mode="full")
    assert baseline.differences_found == 0
    a, b = items[0].id, items[1].id
    loc = locations[0].id
    early = committed.connect("acme")
    # T1 takes a ledger id first and stays open; it also skews its balance (the difference to find).
    early.execute(INSERT, [a, loc, None, Decimal("10")])
    early.execute(
        "UPDATE inventory_balances SET qty_canonical = qty_canonical + 3 WHERE item_id = %s", [a]
    )
    with committed.connect("acme") as late:  # T2 takes a later id and commits first
        late.execute(INSERT, [b, loc, None, Decimal("1")])
        late.commit()
    with schema_context("acme"):
        first = reconciliation_run(mode="incremental")
    assert first.differences_found == 0  # T1 is not visible yet
    early.commit()
    early.close()
    with schema_context("acme"):
        second = reconciliation_run(mode="incremental")
        full = reconciliation_run(mode="full")
    assert second.differences_found == 1, "the incremental run lost T1's rows"
    d = Discrepancy.objects.get(run=second)
    assert d.item_id == a and d.difference == Decimal("-3")
    assert full.differences_found == 1


def wait_until_no_transaction_older_than(conn, xid: int, seconds: float = 10) -> None:
    """The watermark is the cluster-wide snapshot xmin, which any transaction open anywhere on
    the server (another database included) holds back; wait for strangers to finish so the
    test measures what it means to."""
    import time

    deadline = time.monotonic() + seconds
    while (
        conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()[0]
        <= xid
    ):
        conn.rollback()
        assert time.monotonic() < deadline, "a transaction elsewhere on the server stayed open"
        time.sleep(0.05)
    conn.rollback()


def test_incremental_checks_only_keys_touched_since_the_last_run(committed):
    with schema_context("acme"):
        items, locations, _ = make_catalog(items=4, locations=1, lots_per_item=0)
    loc = locations[0].id
    with committed.connect("acme") as conn:
        for item in items:
            conn.execute(INSERT, [item.id, loc, None, Decimal("100")])
        inserted_xid = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
        conn.commit()
        wait_until_no_transaction_older_than(conn, inserted_xid)
        with schema_context("acme"):
            reconciliation_run(mode="full")
        # Skew item 0 without touching its ledger (incremental skips it); touch and skew item 1.
        conn.execute(
            "UPDATE inventory_balances SET qty_canonical = qty_canonical + 4 WHERE item_id = %s",
            [items[0].id],
        )
        conn.execute(INSERT, [items[1].id, loc, None, Decimal("1")])
        conn.execute(
            "UPDATE inventory_balances SET qty_canonical = qty_canonical + 2 WHERE item_id = %s",
            [items[1].id],
        )
        conn.commit()
    with schema_context("acme"):
        run = reconciliation_run(mode="incremental")
        assert run.since_xid is not None
        assert (run.keys_checked, run.differences_found) == (1, 1)
        assert Discrepancy.objects.get(run=run).item_id == items[1].id
        assert reconciliation_run(mode="full").differences_found == 2
