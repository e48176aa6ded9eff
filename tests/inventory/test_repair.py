"""The guide's troubleshooting path: the rollback SQL by hand leaves objects recorded as applied but
missing; repair_balances puts back exactly the current ones and backfills; rollback_balances drops
the guide's three objects and nothing else; every command records its JobRun and skips a broken
organisation in an all-tenant run."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django_tenants.utils import schema_context

from inventory.services.validation import balance_objects_by_schema, migration_validate
from inventory.signals import balances_rebuilt
from operations.models import JobRun
from tests.inventory.helpers import balance_mismatches, count_rows, make_catalog

pytestmark = pytest.mark.django_db

GUIDE_ROLLBACK = """
    DROP TRIGGER IF EXISTS inventory_ledger_balance_trigger ON inventory_ledger;
    DROP FUNCTION IF EXISTS update_inventory_balance();
    DROP TABLE IF EXISTS inventory_balances;
"""


def stock(schema: str = "acme", prefix: str = "RP") -> list[tuple]:
    """Ledger rows over a few keys (lot and no-lot) through the posting service."""
    from inventory.services.posting import ledger_entries_create

    with schema_context(schema):
        items, locations, lots = make_catalog(items=3, locations=2, lots_per_item=1, prefix=prefix)
        ledger_entries_create(
            entries=[
                {"item": i.sku, "location": loc.code, "qty": f"{n}.125", "kind": "receipt"}
                for n, (i, loc) in enumerate(((i, loc) for i in items for loc in locations), 1)
            ]
            + [
                {
                    "item": items[0].sku,
                    "location": locations[0].code,
                    "lot": lots[0].code,
                    "qty": "-2.5",
                    "kind": "issue",
                }
            ]
        )
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # DDL refuses pending deferred FK checks
    return balances("acme")


def balances(schema: str) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(
            f'SELECT item_id, location_id, lot_key, qty_canonical FROM "{schema}".inventory_balances ORDER BY 1, 2, 3'
        )
        return cur.fetchall()


def guide_rollback_by_hand(schema: str = "acme") -> None:
    with connection.cursor() as cur:
        cur.execute("SELECT set_config('search_path', %s, true)", [f'"{schema}", public'])
        cur.execute(GUIDE_ROLLBACK)
        cur.execute("SELECT set_config('search_path', 'public', true)")
    connection.set_schema_to_public()  # django-tenants sets search_path again on the next cursor


def definitions(schema: str) -> dict:
    """What 'the current objects' means, comparable between two schemas."""
    with connection.cursor() as cur:
        cur.execute(
            """SELECT p.prosrc, p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = %s AND p.proname = 'update_inventory_balance'""",
            [schema],
        )
        src, config = cur.fetchone()
        cur.execute(
            """SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
                 FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0
                  AND NOT a.attisdropped ORDER BY a.attnum""",
            [f"{schema}.inventory_balances"],
        )
        columns = cur.fetchall()
        cur.execute(
            "SELECT indexname, replace(indexdef, %s, 'S.') FROM pg_indexes "
            "WHERE schemaname = %s AND tablename = 'inventory_balances' ORDER BY 1",
            [f"{schema}.", schema],
        )
        indexes = cur.fetchall()
        cur.execute(
            """SELECT t.tgtype, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %s AND t.tgname = 'inventory_ledger_balance_trigger'""",
            [schema],
        )
        trigger = cur.fetchone()
    return {
        "function": src,
        "search_path": [c.replace(schema, "S") for c in config],
        "columns": columns,
        "indexes": indexes,
        "trigger": trigger,
    }


def guard_and_txid(schema: str = "acme") -> tuple:
    with connection.cursor() as cur:
        cur.execute(
            """SELECT array_agg(t.tgname::text ORDER BY t.tgname) FROM pg_trigger t
                 JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %s AND c.relname = 'inventory_ledger' AND NOT t.tgisinternal""",
            [schema],
        )
        triggers = cur.fetchone()[0]
        cur.execute(
            """SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                WHERE attrelid = to_regclass(%s) AND attname = 'txid' AND NOT attisdropped""",
            [f"{schema}.inventory_ledger"],
        )
        txid = cur.fetchone()
    return triggers, txid


# --- the guide's rollback by hand, then the repair ----------------------------------------------


def test_it_puts_back_the_current_objects_and_the_balances_after_the_guides_rollback_sql(
    acme, capsys
):
    before = stock()
    assert len(before) == 7
    expected = definitions("globex")
    assert definitions("acme") == expected
    guide_rollback_by_hand()

    # migrate_schemas trusts django_migrations: it changes nothing (the guide's "re-run migration").
    call_command("migrate_schemas", schema_name="acme", interactive=False, verbosity=0)
    assert balance_objects_by_schema(["acme"])["acme"].missing == [
        "inventory_balances",
        "inventory_ledger_balance_trigger",
        "update_inventory_balance()",
    ]
    with pytest.raises(CommandError):
        call_command("validate_migration", "--schema", "acme")
    out = capsys.readouterr().out
    assert (
        "❌ Inventory balances table exists — acme.inventory_balances is missing; "
        "run manage.py repair_balances --schema acme" in out
    )
    assert "migrate_schemas" not in out  # the hint names the command that really fixes it

    received = []

    def receiver(sender, schema_name, **kwargs):
        received.append((schema_name, count_rows(schema_name, "inventory_balances")))

    balances_rebuilt.connect(receiver)
    try:
        call_command("repair_balances", "--schema", "acme")
    finally:
        balances_rebuilt.disconnect(receiver)
    out = capsys.readouterr().out
    assert (
        "acme: put back: inventory_balances, inventory_ledger_balance_trigger, "
        "update_inventory_balance(); 7 balance rows written; all checks passed" in out
    )
    assert received == [("acme", 7)]  # sent once, after the balances were rebuilt

    assert definitions("acme") == expected  # v3 function pinned to acme, numeric(38,6), indexes
    assert balances("acme") == before
    assert balance_mismatches("acme") == []
    call_command("validate_migration", "--schema", "acme")
    assert "✅ All checks passed" in capsys.readouterr().out
    # The trigger works again.
    from inventory.services.posting import ledger_entries_create

    with schema_context("acme"):
        ledger_entries_create(
            entries=[{"item": "RP-0000", "location": "RP-LOC-0", "qty": "1", "kind": "receipt"}]
        )
    assert balance_mismatches("acme") == []
    assert migration_validate(schema="globex").ok


def test_validate_repair_puts_back_and_backfills(acme, capsys):
    before = stock()
    guide_rollback_by_hand()
    call_command("validate_migration", "--schema", "acme", "--repair")
    assert "✅ All checks passed" in capsys.readouterr().out
    assert balances("acme") == before and balance_mismatches("acme") == []
    kinds = list(JobRun.objects.order_by("created_at", "id").values_list("kind", "status"))
    assert kinds == [("validate", "succeeded"), ("repair", "succeeded"), ("validate", "succeeded")]


def test_the_repair_re_enables_a_disabled_trigger_and_is_harmless_when_nothing_is_missing(acme):
    before = stock()
    with connection.cursor() as cur:
        cur.execute(
            "ALTER TABLE acme.inventory_ledger DISABLE TRIGGER inventory_ledger_balance_trigger"
        )
    call_command("repair_balances", "--schema", "acme")
    assert migration_validate(schema="acme").ok
    call_command("repair_balances", "--schema", "acme")
    assert balances("acme") == before
    assert JobRun.objects.filter(kind="repair", status="succeeded").count() == 2


# --- validation: balances must cover the ledger -------------------------------------------------


def test_validation_fails_on_an_empty_balance_table_with_ledger_rows(acme):
    stock()
    with connection.cursor() as cur:
        cur.execute("DELETE FROM acme.inventory_balances")
    failed = {c.name: c.detail for c in migration_validate(schema="acme").failed}
    assert failed == {
        "Balances cover the ledger": "not backfilled: 7 ledger rows and no balance row; "
        "run manage.py backfill_balances --schema acme"
    }
    call_command("backfill_balances", "--schema", "acme")
    assert migration_validate(schema="acme").ok


def test_validation_fails_when_the_balance_totals_differ_from_the_ledger(acme):
    stock()
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE acme.inventory_balances SET qty_canonical = qty_canonical + 1 "
            "WHERE id = (SELECT min(id) FROM acme.inventory_balances)"
        )
    [check] = migration_validate(schema="acme").failed
    assert check.name == "Balances cover the ledger"
    assert check.detail == (
        "ledger 7 keys totalling 19.250000, balances 7 rows totalling 20.250000; "
        "run manage.py backfill_balances --schema acme"
    )


def test_an_empty_organisation_passes_the_coverage_check(acme):
    check = next(
        c for c in migration_validate(schema="acme").checks if c.name == "Balances cover the ledger"
    )
    assert check.ok and check.detail == "0 keys, total 0"


def test_the_organizations_check_agrees_with_its_detail(acme):
    report = migration_validate(schema="acme")
    [check] = [c for c in report.checks if c.name == "Organizations table exists"]
    assert check.ok and check.detail == "public.organizations"
    assert all(not c.ok or "missing" not in c.detail for c in report.checks)
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE public.organizations RENAME TO organizations_away")
    try:
        [check] = [
            c
            for c in migration_validate(schema="acme").checks
            if c.name == "Organizations table exists"
        ]
        assert not check.ok
        assert check.detail.startswith("public.organizations is missing")
    finally:
        with connection.cursor() as cur:
            cur.execute("ALTER TABLE public.organizations_away RENAME TO organizations")


# --- rollback_balances ----------------------------------------------------------------------------


def test_rollback_drops_the_guides_three_objects_and_keeps_the_ledger_guard_and_txid(acme, capsys):
    stock()
    guard_before = guard_and_txid()
    assert guard_before == (
        [
            "inventory_ledger_balance_trigger",
            "inventory_ledger_no_truncate",
            "inventory_ledger_no_update_delete",
        ],
        ("xid8",),
    )
    call_command("rollback_balances", "--schema", "acme")
    assert (
        "acme: dropped inventory_ledger_balance_trigger, update_inventory_balance(), "
        "inventory_balances. Put them back with: manage.py repair_balances --schema acme"
        in capsys.readouterr().out
    )
    assert guard_and_txid() == (
        ["inventory_ledger_no_truncate", "inventory_ledger_no_update_delete"],
        ("xid8",),
    )
    assert balance_objects_by_schema(["acme"])["acme"].missing == [
        "inventory_balances",
        "inventory_ledger_balance_trigger",
        "update_inventory_balance()",
    ]
    assert balance_objects_by_schema(["globex"])["globex"].present
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("DELETE FROM acme.inventory_ledger")
    job = JobRun.objects.get()
    assert (job.kind, job.schema_name, job.status) == ("rollback", "acme", "succeeded")
    assert job.requested_by.startswith("cli")

    call_command("repair_balances", "--schema", "acme")
    assert guard_and_txid() == guard_before and migration_validate(schema="acme").ok
    assert balance_mismatches("acme") == []


def test_rollback_needs_one_named_schema(db):
    with pytest.raises(CommandError):
        call_command("rollback_balances")
    with pytest.raises(CommandError, match="No tenant schema 'nope'"):
        call_command("rollback_balances", "--schema", "nope")
    assert not JobRun.objects.exists()


# --- every door records the same JobRun ---------------------------------------------------------


def test_the_command_line_backfill_and_validation_are_recorded_like_the_pages_jobs(acme):
    stock()
    call_command("backfill_balances", "--schema", "acme")
    call_command("validate_migration", "--schema", "acme")
    runs = JobRun.objects.order_by("created_at", "id")
    assert [(r.kind, r.schema_name, r.status) for r in runs] == [
        ("backfill", "acme", "succeeded"),
        ("validate", "acme", "succeeded"),
    ]
    backfill, validate = runs
    assert backfill.result["ledger_rows"] == 7 and backfill.finished_at is not None
    assert backfill.message == "7 ledger rows read, 0 balance rows written, 0 removed"
    assert validate.result["ok"] is True and validate.message == "all checks passed"
    assert backfill.requested_by.startswith("cli")


# --- a broken organisation does not stop an all-tenant run --------------------------------------


@pytest.fixture
def broken_org(db):
    """An active organisation whose schema has no tables (as issue 17 made with a reserved slug)."""
    from tenants.models import Organization

    org = Organization(schema_name="broken_h1", slug="broken-h1", name="Broken")
    org.auto_create_schema = False
    org.save()
    with connection.cursor() as cur:
        cur.execute("CREATE SCHEMA broken_h1")
    return org


@pytest.mark.parametrize("command", ["backfill_balances", "validate_migration", "repair_balances"])
def test_an_all_tenant_run_reports_and_skips_a_broken_organisation(command, broken_org, capsys):
    stock()
    with pytest.raises(CommandError) as err:
        call_command(command)
    assert err.value.returncode == 1
    assert "broken_h1" in str(err.value)
    out, errors = capsys.readouterr()
    assert "Traceback" not in errors
    statuses = dict(JobRun.objects.values_list("schema_name", "status"))
    if command == "validate_migration":
        assert statuses == {"acme": "succeeded", "broken_h1": "succeeded", "globex": "succeeded"}
        assert (
            "❌ Inventory ledger table exists — broken_h1.inventory_ledger is missing; "
            "run manage.py migrate_schemas --schema broken_h1" in out
        )
    else:
        assert statuses == {"acme": "succeeded", "broken_h1": "failed", "globex": "succeeded"}
        assert (
            "broken_h1: inventory_ledger is missing (migrations not applied, or not an inventory "
            "schema); run manage.py migrate_schemas --schema broken_h1" in errors
        )
        assert "acme:" in out and "globex:" in out
    assert balance_mismatches("acme") == []


def test_the_backfill_refuses_a_schema_without_its_balance_table_naming_the_repair(acme):
    stock()
    guide_rollback_by_hand()
    with pytest.raises(CommandError):
        call_command("backfill_balances", "--schema", "acme")
    job = JobRun.objects.get()
    assert job.status == "failed"
    assert (
        "acme: inventory_balances is missing; run manage.py repair_balances --schema acme"
        in job.error
    )


def test_the_wide_balance_column_is_numeric_38_6(acme):
    with connection.cursor() as cur:
        cur.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'acme.inventory_balances'::regclass AND attname = 'qty_canonical'"
        )
        assert cur.fetchone() == ("numeric(38,6)",)
