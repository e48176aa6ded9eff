"""The import's bulk load (inventory/services/ledger_bulk_load.py): a large file into a small
ledger is written with the ledger's secondary indexes and foreign keys dropped, then rebuilt in
the same transaction. The ledger must end exactly as it was defined, with the same rows and
balances the online path writes; a failure leaves the definitions and the data as they were;
and a ledger someone else is using, or already larger than the file, is written online."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import schema_context

from inventory.services.importer import ledger_import_csv
from inventory.services.stock_policy import policy_set
from tests.inventory.helpers import balance_mismatches, count_rows

HEADER = "sku,item_name,unit,location,lot,qty,kind,reference,occurred_at\n"


def rows(n: int, *, first: int = 0) -> str:
    """n rows over 7 items x 3 locations, every 4th with a lot; issues after receipts."""
    out = []
    for r in range(first, first + n):
        lot = f"L-{r % 2}" if r % 4 == 0 else ""
        qty, kind = ("-1", "issue") if r % 3 == 2 else ("2.5", "receipt")
        out.append(
            f"SKU-{r % 7},Item {r % 7},ea,WH-{r % 3},{lot},{qty},{kind},R-{r},"
            f"2025-01-01T00:00:{r % 60:02d}Z\n"
        )
    return "".join(out)


def ledger_definition(schema: str) -> tuple[list, list, list]:
    """The ledger's indexes, constraints and column defaults as the catalogue states them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = %s::regclass ORDER BY 1",
            [f"{schema}.inventory_ledger"],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass ORDER BY 1",
            [f"{schema}.inventory_ledger"],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT a.attname, pg_get_expr(d.adbin, d.adrelid), a.attidentity "
            "FROM pg_attribute a LEFT JOIN pg_attrdef d "
            "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1",
            [f"{schema}.inventory_ledger"],
        )
        return indexes, constraints, cursor.fetchall()


def ledger_rows(schema: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.sku, c.code, coalesce(t.code, ''), e.qty_canonical, e.kind, e.reference, "
            "e.occurred_at "
            f'FROM "{schema}".inventory_ledger e '
            f'JOIN "{schema}".inventory_items i ON i.id = e.item_id '
            f'JOIN "{schema}".inventory_locations c ON c.id = e.location_id '
            f'LEFT JOIN "{schema}".inventory_lots t ON t.id = e.lot_id ORDER BY e.id'
        )
        return cursor.fetchall()


def write(tmp_path, text, name="ledger.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.django_db
@override_settings(IMPORT_BULK_MIN_ROWS=100)
def test_a_large_file_into_an_empty_ledger_is_bulk_loaded_and_ends_as_the_online_import(
    acme, globex, tmp_path
):
    before = ledger_definition("acme")
    text = HEADER + rows(600)
    with schema_context("acme"):
        bulk = ledger_import_csv(path=write(tmp_path, text))
    with schema_context("globex"):
        online = ledger_import_csv(path=write(tmp_path, text), online=True)
    assert (bulk.mode, online.mode) == ("bulk", "online")
    assert "rebuild" in bulk.steps and "rebuild" not in online.steps
    # Same indexes (names and definitions) and constraints as before the load.
    assert ledger_definition("acme") == before
    assert len(before[0]) == 9 and sum(d.startswith("FOREIGN KEY") for _, d in before[1]) == 4
    # The same rows as the online path (which writes item by item), ids in the file's order.
    assert sorted(ledger_rows("acme")) == sorted(ledger_rows("globex"))
    assert [r[5] for r in ledger_rows("acme")] == [f"R-{r}" for r in range(600)]
    assert balance_mismatches("acme") == [] and balance_mismatches("globex") == []


@pytest.mark.django_db
@override_settings(IMPORT_BULK_MIN_ROWS=100)
def test_the_rebuilt_foreign_keys_are_enforced(acme, tmp_path):
    with schema_context("acme"):
        assert ledger_import_csv(path=write(tmp_path, HEADER + rows(200))).mode == "bulk"
    with connection.cursor() as cursor, pytest.raises(Exception) as err:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "INSERT INTO acme.inventory_ledger (item_id, location_id, qty_canonical, kind, "
            "reference, occurred_at, recorded_at, recorded_by) "
            "VALUES (987654, 1, 1, 'receipt', '', now(), now(), '')"
        )
    assert "inventory_ledger_item_id" in str(err.value) and "foreign key" in str(err.value)


@pytest.mark.django_db
@override_settings(IMPORT_BULK_MIN_ROWS=100)
def test_a_bulk_load_refused_by_the_stock_policy_leaves_the_ledger_as_it_was(acme, tmp_path):
    before = ledger_definition("acme")
    with schema_context("acme"):
        policy_set(no_negative_stock=True)
    text = HEADER + rows(300) + "SKU-1,Item 1,ea,WH-1,,-100000,issue,R-last,\n"
    with pytest.raises(CommandError) as err:
        call_command("import_ledger", "--schema", "acme", write(tmp_path, text))
    assert str(err.value).splitlines()[-1].startswith("Not enough stock; nothing was posted.")
    assert ledger_definition("acme") == before
    for table in (
        "inventory_ledger",
        "inventory_balances",
        "inventory_postings",
        "inventory_items",
    ):
        assert count_rows("acme", table) == 0


@pytest.mark.django_db
@override_settings(IMPORT_BULK_MIN_ROWS=100)
def test_a_ledger_already_larger_than_the_file_is_written_online(acme, tmp_path):
    with schema_context("acme"):
        ledger_import_csv(path=write(tmp_path, HEADER + rows(300)), online=True)
        second = ledger_import_csv(path=write(tmp_path, HEADER + rows(200, first=300), "b.csv"))
    assert second.mode == "online"
    assert count_rows("acme", "inventory_ledger") == 500
    assert balance_mismatches("acme") == []


@pytest.mark.django_db
def test_a_small_file_is_written_online(acme, tmp_path):
    with schema_context("acme"):
        assert ledger_import_csv(path=write(tmp_path, HEADER + rows(50))).mode == "online"


def test_a_ledger_in_use_is_not_locked_out_the_import_goes_online(committed, tmp_path):
    """A reader holding the ledger (an open transaction that read it): the bulk load does not
    wait for it beyond IMPORT_BULK_LOCK_TIMEOUT_MS, it writes online, and the reader is never
    blocked."""
    path = write(tmp_path, HEADER + rows(300))
    reader = committed.connect("acme")
    reader.execute("SELECT count(*) FROM inventory_ledger").fetchone()  # holds ACCESS SHARE
    try:
        started = time.monotonic()
        with override_settings(IMPORT_BULK_MIN_ROWS=100, IMPORT_BULK_LOCK_TIMEOUT_MS=200):
            with schema_context("acme"):
                result = ledger_import_csv(path=path)
        assert result.mode == "online"
        assert time.monotonic() - started < 10
        # The reader's transaction still sees its snapshot and is still usable.
        assert reader.execute("SELECT 1").fetchone() == (1,)
    finally:
        reader.rollback()
        reader.close()
    assert count_rows("acme", "inventory_ledger") == 300
    assert balance_mismatches("acme") == []


def test_a_posting_during_a_bulk_load_waits_and_then_lands(committed, tmp_path):
    """A posting that arrives while the bulk load holds the ledger waits for its COMMIT, then
    goes in on top: both sets of rows, balances exact, indexes and keys in place."""
    before = ledger_definition("acme")
    path = write(tmp_path, HEADER + rows(3000))
    posted = {}

    def post_when_locked():
        conn = committed.connect("acme", autocommit=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # until the import holds the ledger exclusively
                held = conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE relation = 'inventory_ledger'::regclass "
                    "AND mode = 'AccessExclusiveLock' AND granted"
                ).fetchone()[0]
                if held:
                    break
                time.sleep(0.005)
            posted["saw_lock"] = bool(held)
            started = time.monotonic()
            conn.execute(
                "INSERT INTO inventory_ledger (item_id, location_id, qty_canonical, kind, "
                "reference, occurred_at, recorded_at, recorded_by) SELECT i.id, l.id, 7, "
                "'receipt', 'during', now(), now(), '' FROM inventory_items i, "
                "inventory_locations l WHERE i.sku = 'SKU-1' AND l.code = 'WH-1'"
            )
            posted["waited"] = time.monotonic() - started
        finally:
            conn.close()

    thread = threading.Thread(target=post_when_locked)
    thread.start()
    with override_settings(IMPORT_BULK_MIN_ROWS=100):
        with schema_context("acme"):
            result = ledger_import_csv(path=path)
    thread.join(60)
    assert result.mode == "bulk"
    assert posted["saw_lock"] is True and posted["waited"] > 0
    assert count_rows("acme", "inventory_ledger") == 3001
    assert ledger_definition("acme") == before
    assert balance_mismatches("acme") == []


def test_two_organisations_bulk_load_at_once(committed, tmp_path):
    """Acme's bulk load still uncommitted (its ledger's indexes dropped and rebuilt, its DDL
    having emptied the health snapshot): globex's bulk load runs to the end meanwhile instead of
    waiting for acme's COMMIT. Both commit whole."""
    from django.db import connections, transaction

    from operations.models import HealthSnapshot

    HealthSnapshot.objects.all().delete()
    HealthSnapshot.objects.create(name="migrations", result={"ok": True}, checked_at=timezone.now())
    paths = {s: write(tmp_path, HEADER + rows(400), f"{s}.csv") for s in ("acme", "globex")}
    acme_done, release, results = threading.Event(), threading.Event(), {}

    def acme_import():
        try:
            with override_settings(IMPORT_BULK_MIN_ROWS=100), transaction.atomic():
                with schema_context("acme"):
                    results["acme"] = ledger_import_csv(path=paths["acme"]).mode
                acme_done.set()
                release.wait(30)  # acme's transaction stays open until globex is done
        finally:
            acme_done.set()
            connections.close_all()

    thread = threading.Thread(target=acme_import)
    thread.start()
    try:
        assert acme_done.wait(30) and results.get("acme") == "bulk"
        started = time.monotonic()
        with override_settings(IMPORT_BULK_MIN_ROWS=100), schema_context("globex"):
            results["globex"] = ledger_import_csv(path=paths["globex"]).mode
        globex_seconds = time.monotonic() - started
    finally:
        release.set()
        thread.join(30)
    assert results == {"acme": "bulk", "globex": "bulk"}
    assert globex_seconds < 5  # it would have waited for acme's 30 s
    assert count_rows("acme", "inventory_ledger") == count_rows("globex", "inventory_ledger") == 400
    assert balance_mismatches("acme") == [] and balance_mismatches("globex") == []
    assert HealthSnapshot.objects.count() == 0


def test_a_larger_ledger_is_not_locked_at_all(committed, tmp_path):
    """A ledger already holding more rows than the file: the import goes online without
    asking for the ledger's lock: a reader holding the ledger is not even queued
    behind it (the lock's timeout here is 20 s; the import takes well under that)."""
    setup = committed.connect("acme")
    setup.execute(
        "INSERT INTO inventory_items (sku, name, unit, is_active, created_at) "
        "VALUES ('BIG-1', 'Big', 'ea', true, now())"
    )
    setup.execute(
        "INSERT INTO inventory_locations (code, name, site, is_active) VALUES ('BIG', 'Big', '', true)"
    )
    setup.execute(
        "INSERT INTO inventory_ledger (item_id, location_id, qty_canonical, kind, reference, "
        "occurred_at, recorded_at, recorded_by) SELECT i.id, l.id, 1, 'receipt', '', now(), "
        "now(), '' FROM inventory_items i, inventory_locations l, generate_series(1, 500) "
        "WHERE i.sku = 'BIG-1' AND l.code = 'BIG'"
    )
    setup.commit()
    setup.close()
    reader = committed.connect("acme")
    reader.execute("SELECT count(*) FROM inventory_ledger").fetchone()  # holds ACCESS SHARE
    try:
        started = time.monotonic()
        with override_settings(IMPORT_BULK_MIN_ROWS=100, IMPORT_BULK_LOCK_TIMEOUT_MS=20_000):
            with schema_context("acme"):
                result = ledger_import_csv(path=write(tmp_path, HEADER + rows(300)))
        assert result.mode == "online"
        assert time.monotonic() - started < 10
    finally:
        reader.rollback()
        reader.close()
    assert count_rows("acme", "inventory_ledger") == 800
    assert balance_mismatches("acme") == []
