"""The migration guide (../shared/reference/enterprise-hardening-migration-guide.md) walked in order,
as an operator would, with data that really commits: backup, migrate, backfill, validate with the
guide's ✅ lines, health, an X-Org-Id request, the guide's rollback SQL by hand, the repair,
validation again, the reconciliation and the backup monitor."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from inventory.services.validation import balance_objects_by_schema
from tests.inventory.helpers import balance_mismatches, count_rows, make_catalog

GUIDE_VALIDATE_LINES = [
    "✅ Organizations table exists",
    "✅ Inventory balances table exists",
    "✅ Balance trigger exists",
    "✅ Balance table indexes exist",
]

GUIDE_ROLLBACK_SQL = """
    DROP TRIGGER IF EXISTS inventory_ledger_balance_trigger ON inventory_ledger;
    DROP FUNCTION IF EXISTS update_inventory_balance();
    DROP TABLE IF EXISTS inventory_balances;
"""


def run(capsys, *args) -> str:
    capsys.readouterr()
    call_command(*args)
    return capsys.readouterr().out


def balances(schema: str) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(
            f'SELECT item_id, location_id, lot_key, qty_canonical FROM "{schema}".inventory_balances '
            "ORDER BY 1, 2, 3"
        )
        return cur.fetchall()


@pytest.fixture
def walk_cleanup(committed):
    """Whatever happens, acme gets its balance objects back and the public rows the walk made go."""
    yield committed
    from inventory.services.repair import balance_objects_restore
    from operations.models import WorkerHeartbeat
    from tenants.models import ApiKey

    connection.set_schema_to_public()
    if not balance_objects_by_schema(["acme"])["acme"].present:
        with schema_context("acme"):
            balance_objects_restore()
    ApiKey.objects.filter(label="guide walk").delete()
    WorkerHeartbeat.objects.all().delete()


def test_it_walks_the_migration_guide_from_backup_to_monitor(
    walk_cleanup, settings, tmp_path, capsys
):
    from inventory.services.posting import ledger_entries_create
    from operations.models import BackupRecord, JobRun
    from operations.tasks import worker_heartbeat
    from tenants.models import Organization
    from tenants.services import api_key_issue

    settings.BACKUP_DIR = tmp_path / "backups"
    acme = Organization.objects.get(slug="acme")

    # An existing ledger, from before the balance table: its balances were never computed.
    with schema_context("acme"):
        items, locations, lots = make_catalog(items=4, locations=2, lots_per_item=1, prefix="GW")
        ledger_entries_create(
            entries=[
                {"item": i.sku, "location": loc.code, "qty": f"{n}.5", "kind": "receipt"}
                for n, (i, loc) in enumerate(((i, loc) for i in items for loc in locations), 1)
            ]
            + [
                {
                    "item": items[0].sku,
                    "location": locations[0].code,
                    "lot": lots[0].code,
                    "qty": "3.25",
                    "kind": "receipt",
                }
            ]
        )
    with connection.cursor() as cur:
        cur.execute("DELETE FROM acme.inventory_balances")  # no guard: a derived table
    assert count_rows("acme", "inventory_ledger") == 9

    # Step 1: pre-migration backup.
    out = run(capsys, "backup_database")
    record = BackupRecord.objects.get()
    assert record.status == "ok" and (settings.BACKUP_DIR / record.file_name).exists()
    assert record.file_name in out

    # Step 2: the balance table migration (idempotent: safe to re-run).
    call_command("migrate_schemas", interactive=False, verbosity=0)
    assert balance_objects_by_schema(["acme"])["acme"].live

    # Before the backfill, validation says the balances do not cover the ledger.
    with pytest.raises(CommandError):
        run(capsys, "validate_migration", "--schema", "acme")
    assert "not backfilled: 9 ledger rows and no balance row" in capsys.readouterr().out

    # Step 3: backfill.
    out = run(capsys, "backfill_balances")
    assert "acme: 9 ledger rows read, 9 balance rows written, 0 removed" in out
    assert balance_mismatches("acme") == []
    exact = balances("acme")

    # Step 4: verify, with the guide's expected lines, for every organisation.
    out = run(capsys, "validate_migration")
    for schema in ("acme", "globex"):
        section = out.split(f"\n{schema}\n", 1)[1].split("\n\n", 1)[0]
        for line in GUIDE_VALIDATE_LINES:
            assert line + "\n" in section + "\n", (schema, line)
        assert "❌" not in section
    assert out.rstrip().endswith("✅ All checks passed")

    # Step 6: health, and the tenant resolution by X-Org-Id.
    worker_heartbeat()
    client = Client(HTTP_HOST="localhost")
    health = client.get("/health")
    assert health.status_code == 200, health.json()
    assert health.json()["status"] == "ok"
    assert health.json()["balances"]["ok"] is True
    assert "acme" not in health.json()["balances"]["organisations"]  # listed only when not whole
    key = api_key_issue(organization=acme, label="guide walk").raw_key
    response = client.get(
        "/api/items-enterprise", headers={"X-Org-Id": str(acme.id), "X-Api-Key": key}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["organization"] == "acme"
    on_hand = {row["sku"]: row["on_hand"] for row in body["results"]}
    assert on_hand["GW-0000"] == "7.250000"  # 1.5 + 2.5 (two locations) + 3.25 (lot)

    # Rollback procedure 3, by hand in one schema, exactly as the guide prints it.
    with committed_connection(walk_cleanup, "acme") as conn:
        conn.execute(GUIDE_ROLLBACK_SQL)
    assert balance_objects_by_schema(["acme"])["acme"].missing == [
        "inventory_balances",
        "inventory_ledger_balance_trigger",
        "update_inventory_balance()",
    ]
    assert balance_objects_by_schema(["globex"])["globex"].live

    # Troubleshooting: health names the organisation, validation names the fix, the API says so.
    health = client.get("/health")
    assert health.status_code == 503
    assert health.json()["failing"] == ["balances"]
    assert health.json()["balances"]["missing"] == ["acme"]
    with pytest.raises(CommandError):
        run(capsys, "validate_migration", "--schema", "acme")
    assert "run manage.py repair_balances --schema acme" in capsys.readouterr().out
    response = client.get(
        "/api/items-enterprise", headers={"X-Org-Id": str(acme.id), "X-Api-Key": key}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "balances_unavailable"

    # "If missing, re-run migration": migrate_schemas changes nothing; the repair does it.
    call_command("migrate_schemas", schema_name="acme", interactive=False, verbosity=0)
    assert not balance_objects_by_schema(["acme"])["acme"].present
    out = run(capsys, "repair_balances", "--schema", "acme")
    assert "9 balance rows written; all checks passed" in out

    # Validate again: the guide's lines, balances exactly as before the rollback.
    out = run(capsys, "validate_migration", "--schema", "acme")
    for line in GUIDE_VALIDATE_LINES:
        assert line in out
    assert "✅ All checks passed" in out
    assert balances("acme") == exact and balance_mismatches("acme") == []
    assert client.get("/health").status_code == 200
    response = client.get(
        "/api/items-enterprise", headers={"X-Org-Id": str(acme.id), "X-Api-Key": key}
    )
    assert response.status_code == 200
    assert {r["sku"]: r["on_hand"] for r in response.json()["results"]}["GW-0000"] == "7.250000"

    # Post-migration: the reconciliation job and the backup monitor.
    out = run(capsys, "reconcile_balances", "--schema", "acme", "--full")
    assert "acme: " in out and " 0 differences" in out
    out = run(capsys, "monitor_backups")
    assert out.startswith("✅ ")

    # Every door recorded its run, so the fleet and the runbook show them.
    kinds = set(JobRun.objects.filter(schema_name="acme").values_list("kind", flat=True))
    assert {"backfill", "validate", "repair"} <= kinds
    assert not JobRun.objects.filter(status__in=["queued", "running"]).exists()


class committed_connection:
    """A separate, committing psql-like session in one schema (what `psql $DATABASE_URL` is)."""

    def __init__(self, committed, schema: str):
        self.conn = committed.connect(schema, autocommit=True)

    def __enter__(self):
        return self.conn

    def __exit__(self, *exc):
        self.conn.close()
