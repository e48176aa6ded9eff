"""The balance migration: validation passes and fails for the right reasons, the SQL is
idempotent, and rollback (migrate back) then forward restores everything."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from inventory.services.validation import migration_validate
from inventory.sql import FORWARD, read_sql
from tests.inventory.helpers import balance_mismatches, count_rows, make_catalog

pytestmark = pytest.mark.django_db


def failed_names(schema="acme"):
    return [c.name for c in migration_validate(schema=schema).failed]


def test_it_passes_validation_on_a_migrated_schema(acme):
    report = migration_validate(schema="acme")
    assert report.ok, [c.line() for c in report.checks]
    assert len(report.checks) >= 8


def test_the_function_is_pinned_and_validation_notices_when_it_is_not(acme):
    with connection.cursor() as cur:
        cur.execute("ALTER FUNCTION acme.update_inventory_balance() RESET search_path")
    assert failed_names() == ["Balance function writes this schema's balances"]
    call_command("validate_migration", "--schema", "acme", "--repair")
    assert failed_names() == []


def test_it_fails_validation_when_the_trigger_is_dropped_and_passes_after_repair(acme):
    with connection.cursor() as cur:
        cur.execute("DROP TRIGGER inventory_ledger_balance_trigger ON acme.inventory_ledger")
    assert failed_names() == ["Balance trigger exists"]
    call_command("validate_migration", "--schema", "acme", "--repair")  # re-runs the migration SQL
    assert failed_names() == []


def test_it_fails_validation_when_the_trigger_is_disabled(acme):
    with connection.cursor() as cur:
        cur.execute(
            "ALTER TABLE acme.inventory_ledger DISABLE TRIGGER inventory_ledger_balance_trigger"
        )
    assert failed_names() == ["Balance trigger is enabled"]
    with connection.cursor() as cur:
        cur.execute(
            "ALTER TABLE acme.inventory_ledger ENABLE TRIGGER inventory_ledger_balance_trigger"
        )
    assert failed_names() == []


def test_it_fails_validation_without_an_index_or_the_append_only_guard(acme):
    with connection.cursor() as cur:
        cur.execute("DROP INDEX acme.inventory_balances_location_idx")
        cur.execute(
            "ALTER TABLE acme.inventory_ledger DISABLE TRIGGER inventory_ledger_no_truncate"
        )
    report = migration_validate(schema="acme")
    failed = {c.name: c.detail for c in report.failed}
    assert "inventory_balances_location_idx" in failed["Balance table indexes exist"]
    assert (
        "inventory_ledger_no_truncate disabled"
        in failed["Ledger is append-only (UPDATE, DELETE, TRUNCATE refused)"]
    )
    assert migration_validate(schema="globex").ok


def test_the_command_prints_the_guides_lines_and_exits_1_on_failure(acme, capsys):
    call_command("validate_migration", "--schema", "acme")
    out = capsys.readouterr().out
    for line in (
        "✅ Organizations table exists",
        "✅ Inventory balances table exists",
        "✅ Balance trigger exists",
        "✅ Balance table indexes exist",
        "✅ All checks passed",
    ):
        assert line in out
    with connection.cursor() as cur:
        cur.execute("DROP TRIGGER inventory_ledger_balance_trigger ON acme.inventory_ledger")
    with pytest.raises(CommandError) as err:
        call_command("validate_migration")
    assert err.value.returncode == 1
    assert "❌ Balance trigger exists" in capsys.readouterr().out
    call_command("validate_migration", "--schema", "globex")


def test_the_command_reports_json(acme, capsys):
    call_command("validate_migration", "--json")
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    assert {s["schema"] for s in data["schemas"]} == {"acme", "globex"}


def test_the_migration_sql_is_idempotent(acme):
    def objects():
        with connection.cursor() as cur:
            cur.execute("""SELECT (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                                    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'acme' AND NOT t.tgisinternal),
                                  (SELECT count(*) FROM pg_indexes WHERE schemaname = 'acme'),
                                  (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'acme')""")
            return cur.fetchone()

    before = objects()
    with connection.cursor() as cur:
        cur.execute("SET LOCAL search_path TO acme, public")
        for _ in range(2):
            for name in FORWARD:
                cur.execute(read_sql(name))
    assert objects() == before
    assert migration_validate(schema="acme").ok


def test_migrating_back_to_0001_removes_the_balance_objects_and_forward_restores_them(acme):
    # A schema downgrade (it also reverses the ledger guard and txid); the guide's rollback is
    # rollback_balances (tests/inventory/test_repair.py).
    from django_tenants.utils import schema_context

    with schema_context("acme"):
        items, locations, _ = make_catalog(prefix="R")
        with connection.cursor() as cur:
            cur.execute(
                """INSERT INTO inventory_ledger (item_id, location_id, qty_canonical, kind, reference,
                           occurred_at, recorded_at, recorded_by) VALUES (%s, %s, 5, 'receipt', '', now(), now(), '')""",
                [items[0].id, locations[0].id],
            )
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # DDL refuses pending deferred FK checks
    call_command(
        "migrate_schemas", "inventory", "0001", schema_name="acme", interactive=False, verbosity=0
    )
    with connection.cursor() as cur:
        cur.execute(
            "SELECT to_regclass('acme.inventory_balances'), to_regproc('acme.update_inventory_balance')"
        )
        assert cur.fetchone() == (None, None)
    assert "Balance trigger exists" in failed_names()
    assert migration_validate(schema="globex").ok  # only the named schema was rolled back

    call_command("migrate_schemas", "inventory", schema_name="acme", interactive=False, verbosity=0)
    # The table comes back empty: validation says so until the backfill rebuilds it.
    assert count_rows("acme", "inventory_balances") == 0
    assert failed_names() == ["Balances cover the ledger"]
    call_command("backfill_balances", "--schema", "acme")
    assert migration_validate(schema="acme").ok
    assert balance_mismatches("acme") == []
    with connection.cursor() as cur:
        cur.execute("SELECT qty_canonical FROM acme.inventory_balances")
        assert cur.fetchall() == [(Decimal("5.000000"),)]


def test_the_commands_reject_an_unknown_schema(db):
    with pytest.raises(CommandError, match="No tenant schema 'nope'"):
        call_command("validate_migration", "--schema", "nope")
    with pytest.raises(CommandError, match="No tenant schema 'nope'"):
        call_command("backfill_balances", "--schema", "nope")
