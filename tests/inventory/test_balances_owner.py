"""The balance table has one owner (inventory/balances.py) and the ledger one COPY writer
(inventory/services/ledger_copy.py); a backfill and a reconciliation run take the same lock;
quantities above 10**12 (discrepancies) and 10**22 (formatting) are handled."""

from __future__ import annotations

import re
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from inventory.selectors import fmt_qty
from reconciliation.models import Discrepancy
from reconciliation.services import discrepancy_approve, reconciliation_run
from tests.inventory.helpers import make_catalog

ROOT = Path(__file__).resolve().parents[2]
APPS = ("inventory", "reconciliation", "operations", "tenants", "dashboard", "alerts", "config")
BALANCE_WRITE = re.compile(
    r"(INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE)\s+(\w+\.)?inventory_balances\b", re.I
)
INSERT = (
    "INSERT INTO inventory_ledger (item_id, location_id, lot_id, qty_canonical, kind, reference, "
    "occurred_at, recorded_at, recorded_by) VALUES (%s, %s, NULL, %s, 'receipt', '', now(), now(), '')"
)
SKEW = "UPDATE inventory_balances SET qty_canonical = qty_canonical + %s WHERE item_id = %s"


def _app_sources():
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" not in path.parts:
                yield path, path.read_text()


def test_it_writes_the_balance_table_only_in_inventory_balances():
    writers = sorted(
        str(path.relative_to(ROOT)) for path, text in _app_sources() if BALANCE_WRITE.search(text)
    )
    assert writers == ["inventory/balances.py"]


def test_it_leaves_no_tenant_table_sql_in_the_shared_reconciliation_app():
    found = sorted(
        str(path.relative_to(ROOT))
        for path, text in _app_sources()
        if path.parts[len(ROOT.parts)] == "reconciliation"
        and re.search(r"\binventory_(balances|ledger)\b", text)
    )
    assert found == []


def test_it_copies_into_the_ledger_in_one_place():
    copiers = sorted(
        str(path.relative_to(ROOT))
        for path, text in _app_sources()
        if re.search(r"COPY\s+inventory_ledger\b", text)
    )
    assert copiers == ["inventory/services/ledger_copy.py"]


def test_it_formats_a_balance_of_10_to_the_22_and_beyond():
    assert fmt_qty(Decimal(10) ** 22) == "10000000000000000000000.000000"
    assert fmt_qty(Decimal("-99999999999999999999999999999999.999999")) == (
        "-99999999999999999999999999999999.999999"
    )


def _balance(item, location) -> Decimal | None:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT qty_canonical FROM inventory_balances WHERE item_id = %s AND location_id = %s",
            [item.id, location.id],
        )
        row = cur.fetchone()
    return row[0] if row else None


def test_it_stores_and_approves_a_discrepancy_on_a_balance_above_10_to_the_12(in_acme):
    [item], [location], _ = make_catalog(items=1, locations=1, lots_per_item=0, prefix="BIG")
    with connection.cursor() as cur:
        # Each ledger row fits NUMERIC(18,6); their sum, the balance, does not.
        for _ in range(3):
            cur.execute(INSERT, [item.id, location.id, Decimal("999999999999.5")])
        cur.execute(SKEW, [Decimal(7), item.id])
    run = reconciliation_run(mode="full")
    assert (run.status, run.opened, run.auto_corrected) == ("succeeded", 1, 0)
    d = Discrepancy.objects.get(run=run)
    assert (d.ledger_sum, d.balance, d.difference, d.abs_difference) == (
        Decimal("2999999999998.5"),
        Decimal("3000000000005.5"),
        Decimal(-7),
        Decimal(7),
    )
    d = discrepancy_approve(discrepancy_id=d.pk, user=None)
    d.refresh_from_db()
    assert (d.status, d.balance_before, d.balance_after) == (
        "approved",
        Decimal("3000000000005.5"),
        Decimal("2999999999998.5"),
    )
    assert _balance(item, location) == Decimal("2999999999998.5")


def test_it_measures_a_difference_on_a_balance_of_10_to_the_25_exactly(in_acme):
    # Python's default 28-digit context rounds 100.000001 - 10**25 (32 digits).
    [item], [location], _ = make_catalog(items=1, locations=1, lots_per_item=0, prefix="HUGE")
    with connection.cursor() as cur:
        cur.execute(INSERT, [item.id, location.id, Decimal("100.000001")])
        cur.execute(SKEW, [Decimal(10) ** 25, item.id])
    run = reconciliation_run(mode="full")
    d = Discrepancy.objects.get(run=run)
    assert d.difference == Decimal("-10000000000000000000000000.000000")
    assert d.balance == Decimal("10000000000000000000000100.000001")
    discrepancy_approve(discrepancy_id=d.pk, user=None)
    assert _balance(item, location) == Decimal("100.000001")


def test_a_backfill_waits_for_a_reconciliation_run_between_its_comparison_and_its_correction(
    committed,
):
    """The known race: a run measures a small difference, a backfill sets the balance right,
    then the run adds the difference it measured. The backfill must wait for the run's lock."""
    from inventory.services.backfill import balances_backfill

    with schema_context("acme"):
        [item], [location], _ = make_catalog(items=1, locations=1, lots_per_item=0, prefix="RACE")
    with committed.connect("acme", autocommit=True) as conn:
        conn.execute(INSERT, [item.id, location.id, Decimal(100)])
        conn.execute(SKEW, [Decimal("0.004"), item.id])

    done = threading.Event()
    errors: list[BaseException] = []

    def backfill():
        try:
            with schema_context("acme"):
                balances_backfill()
        except BaseException as err:  # noqa: BLE001
            errors.append(err)
        finally:
            connection.close()
            done.set()

    finished_during_run = []
    thread = threading.Thread(target=backfill)

    def progress(step, total, message):
        if step == 1:  # compared, not yet corrected
            thread.start()
            finished_during_run.append(done.wait(timeout=1.5))

    with schema_context("acme"):
        run = reconciliation_run(mode="full", progress=progress)
    thread.join(timeout=30)
    assert errors == []
    assert finished_during_run == [False], "the backfill ran between the comparison and the fix"
    assert done.is_set()
    assert run.auto_corrected == 1
    with schema_context("acme"):
        assert _balance(item, location) == Decimal(100)


@pytest.mark.parametrize("service", ["backfill", "repair"])
def test_a_backfill_or_repair_waits_for_the_reconciliation_lock(committed, service):
    from inventory.services.backfill import balances_backfill
    from inventory.services.repair import balances_repair

    call = {"backfill": balances_backfill, "repair": balances_repair}[service]
    with schema_context("acme"):
        [item], [location], _ = make_catalog(items=1, locations=1, lots_per_item=0, prefix="W")
    done = threading.Event()
    errors: list[BaseException] = []

    def work():
        try:
            with schema_context("acme"):
                call()
        except BaseException as err:  # noqa: BLE001
            errors.append(err)
        finally:
            connection.close()
            done.set()

    with committed.connect("acme", autocommit=True) as other:
        other.execute(INSERT, [item.id, location.id, Decimal(5)])
        other.execute(SKEW, [Decimal(1), item.id])
        other.execute("SELECT pg_advisory_lock(hashtext('reconcile:acme'))")
        thread = threading.Thread(target=work)
        thread.start()
        assert not done.wait(timeout=1.0), f"the {service} did not wait for the lock"
        with schema_context("acme"):
            assert _balance(item, location) == Decimal(6)  # untouched while it waits
        started = time.monotonic()
        other.execute("SELECT pg_advisory_unlock(hashtext('reconcile:acme'))")
        thread.join(timeout=30)
    assert done.is_set() and errors == [] and time.monotonic() - started < 30
    with schema_context("acme"):
        assert _balance(item, location) == Decimal(5)


def test_the_one_copy_writer_loads_a_generator_and_the_trigger_keeps_the_balances(in_acme):
    from inventory.models import LedgerEntry, Posting
    from inventory.services.ledger_copy import ledger_rows_copy
    from tests.inventory.helpers import balance_mismatches

    items, [location], _ = make_catalog(items=3, locations=1, lots_per_item=0, prefix="CP")
    posting = Posting.objects.create(idempotency_key="import:batch:cp", entry_count=6)
    rows = (
        (item.id, location.id, None, Decimal(n), "receipt", f"R-{n}", timezone.now())
        for n, item in enumerate(items * 2, start=1)
    )
    assert ledger_rows_copy(rows, recorded_by="x" * 300, posting_id=posting.id) == 6
    stored = LedgerEntry.objects.filter(posting=posting)
    assert stored.count() == 6
    assert {e.recorded_by for e in stored} == {"x" * 200}
    assert len({e.recorded_at for e in stored}) == 1
    assert _balance(items[0], location) == Decimal(1 + 4)
    assert balance_mismatches("acme") == []
