"""Which DDL empties the health snapshot (operations migrations 0005 and 0008): any DDL on a
real object (the snapshot may no longer say what the catalogue says), never a temporary table
(each CSV import creates and drops its staging tables)."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.utils import timezone

from operations.models import HealthSnapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def snapshot():
    HealthSnapshot.objects.all().delete()
    HealthSnapshot.objects.create(name="migrations", result={"ok": True}, checked_at=timezone.now())


def rows() -> int:
    return HealthSnapshot.objects.count()


def test_a_temporary_table_created_and_dropped_leaves_the_snapshot(snapshot):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE health_tmp (a int)")
        cursor.execute("CREATE INDEX ON health_tmp (a)")
        cursor.execute("CREATE TEMP TABLE health_tmp2 AS SELECT 1 AS a")
        cursor.execute("DROP TABLE health_tmp, health_tmp2")
    assert rows() == 1


def test_a_real_table_empties_the_snapshot(snapshot):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE acme.health_probe (a int)")
    assert rows() == 0


def test_dropping_a_real_object_empties_the_snapshot(snapshot):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE acme.health_probe (a int)")
        HealthSnapshot.objects.create(
            name="balances", result={"ok": True}, checked_at=timezone.now()
        )
        cursor.execute("DROP TABLE acme.health_probe")
    assert rows() == 0


def test_a_csv_import_leaves_the_snapshot(snapshot, acme, tmp_path):
    from django_tenants.utils import schema_context

    from inventory.services.importer import ledger_import_csv

    path = tmp_path / "ledger.csv"
    path.write_text("sku,unit,location,qty,kind\nFL-1,g,WH-A,5,receipt\n", encoding="utf-8")
    with schema_context("acme"):
        assert ledger_import_csv(path=path).rows == 1
    assert rows() == 1


def test_disabling_the_balance_trigger_empties_the_snapshot(snapshot):
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE acme.inventory_ledger DISABLE TRIGGER inventory_ledger_balance_trigger"
        )
    assert rows() == 0


def test_ddl_in_two_organisations_at_once_does_not_wait_for_the_other(committed):
    """Each DDL empties the snapshot; a second one while the first is uncommitted skips the rows
    the first holds instead of waiting for its COMMIT (two bulk imports, each rebuilding its
    ledger's indexes, ran one after the other). Both still leave the snapshot empty."""
    first, second = committed.connect("acme"), committed.connect("globex", autocommit=True)
    try:
        first.execute(
            "INSERT INTO public.operations_health_snapshot (name, result, checked_at) "
            "VALUES ('migrations', '{}', now()), ('balances', '{}', now())"
        )
        first.commit()
        first.execute("CREATE TABLE acme.health_probe_a (a int)")  # deletes, holds the rows
        second.execute("SET statement_timeout = '5s'")
        started = time.monotonic()
        second.execute("CREATE TABLE globex.health_probe_b (a int)")
        assert time.monotonic() - started < 2
        first.commit()
        assert (
            first.execute("SELECT count(*) FROM public.operations_health_snapshot").fetchone()[0]
            == 0
        )
    finally:
        first.rollback()
        first.execute("DROP TABLE IF EXISTS acme.health_probe_a")
        first.commit()
        second.execute("DROP TABLE IF EXISTS globex.health_probe_b")
        first.close()
        second.close()
