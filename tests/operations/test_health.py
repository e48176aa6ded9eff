from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from operations.models import WorkerHeartbeat
from operations.tasks import worker_heartbeat

pytestmark = pytest.mark.django_db


def test_it_is_healthy_with_everything_migrated_and_a_live_worker(api):
    worker_heartbeat()
    response = api.get("/health")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["migrations"]["ok"] is True
    assert body["migrations"]["schemas_checked"] >= 3  # public, acme, globex
    assert body["worker"]["ok"] is True


def test_it_answers_on_a_tenant_host_without_credentials(acme):
    from django.test import Client

    worker_heartbeat()
    assert Client(HTTP_HOST="acme.localhost").get("/health").status_code == 200


def test_it_fails_naming_the_schema_with_an_unapplied_tenant_migration(api, acme):
    worker_heartbeat()
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM acme.django_migrations WHERE app = 'inventory' AND name = '0003_ledger_append_only'"
        )
    response = api.get("/health")
    body = response.json()
    assert response.status_code == 503
    assert "migrations" in body["failing"]
    assert body["migrations"]["pending"] == {"acme": ["inventory.0003_ledger_append_only"]}


def test_it_fails_when_the_worker_heartbeat_is_stale(api):
    WorkerHeartbeat.objects.create(
        cluster="inventory", beat_at=timezone.now() - timezone.timedelta(hours=1)
    )
    response = api.get("/health")
    assert response.status_code == 503
    assert response.json()["failing"] == ["worker"]


def test_it_fails_when_no_worker_ever_beat(api):
    response = api.get("/health")
    assert response.status_code == 503
    assert response.json()["worker"]["last_heartbeat"] is None


def test_it_reports_every_organisations_balance_objects(api, acme, globex):
    worker_heartbeat()
    body = api.get("/health").json()
    assert body["balances"] == {
        "ok": True,
        "organisations": {
            slug: {
                "ok": True,
                "table": True,
                "trigger": True,
                "trigger_enabled": True,
                "function": True,
            }
            for slug in ("acme", "globex")
        },
    }


def test_it_fails_naming_the_organisation_whose_balance_table_is_gone(api, acme):
    # The guide's rollback SQL by hand: django_migrations still records the migration.
    worker_heartbeat()
    with connection.cursor() as cursor:
        cursor.execute("SET search_path TO acme, public")
        cursor.execute(
            "DROP TRIGGER IF EXISTS inventory_ledger_balance_trigger ON inventory_ledger;"
            "DROP FUNCTION IF EXISTS update_inventory_balance();"
            "DROP TABLE IF EXISTS inventory_balances;"
        )
        cursor.execute("SET search_path TO public")
    connection.set_schema_to_public()
    response = api.get("/health")
    body = response.json()
    assert response.status_code == 503
    assert body["failing"] == ["balances"]
    assert body["migrations"]["ok"] is True  # what django_migrations alone would have said
    assert body["balances"]["missing"] == ["acme"]
    assert body["balances"]["message"] == (
        "acme: inventory_balances, inventory_ledger_balance_trigger, update_inventory_balance() "
        "(run manage.py repair_balances --schema acme)"
    )
    assert body["balances"]["organisations"]["acme"] == {
        "ok": False,
        "table": False,
        "trigger": False,
        "trigger_enabled": False,
        "function": False,
    }
    assert body["balances"]["organisations"]["globex"]["ok"] is True


def test_it_reads_the_balance_objects_of_all_organisations_in_one_query(api, acme, globex):
    from django.db import connection as conn
    from django.test.utils import CaptureQueriesContext

    worker_heartbeat()
    with CaptureQueriesContext(conn) as queries:
        api.get("/health")
    catalog = [q for q in queries if "inventory_ledger_balance_trigger" in q["sql"]]
    assert len(catalog) == 1


def test_an_inactive_organisation_without_balances_does_not_fail_health(api, acme):
    from tenants.models import Organization

    worker_heartbeat()
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER inventory_ledger_balance_trigger ON acme.inventory_ledger")
    Organization.objects.filter(slug="acme").update(is_active=False)
    response = api.get("/health")
    assert response.status_code == 200, response.json()
    assert response.json()["balances"]["organisations"]["acme"]["trigger"] is False
