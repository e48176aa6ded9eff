from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from operations.models import WorkerHeartbeat
from operations.tasks import worker_heartbeat
from tests.operations.fake_orgs import fake_organisations_create


@pytest.fixture(autouse=True)
def _no_snapshot_left_by_another_test(django_db_blocker):
    # A committing test elsewhere may leave a current snapshot of its own state behind, and a
    # worker process another test started (make run, make serve) its heartbeat.
    from operations.models import HealthSnapshot

    with django_db_blocker.unblock():
        HealthSnapshot.objects.all().delete()
        WorkerHeartbeat.objects.all().delete()


@pytest.mark.django_db
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


@pytest.mark.django_db
def test_it_answers_on_a_tenant_host_without_credentials(acme):
    from django.test import Client

    worker_heartbeat()
    assert Client(HTTP_HOST="acme.localhost").get("/health").status_code == 200


@pytest.mark.django_db
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


@pytest.mark.django_db
def test_it_names_at_most_twenty_schemas_behind_and_counts_them_all(api, monkeypatch):
    import operations.health as health

    behind = {f"org_{n:04}": ["inventory.0009_x"] for n in range(1000)}
    snapshot = {
        "migrations": ({"ok": False, "schemas_checked": 1000, "pending": behind}, timezone.now())
    }
    monkeypatch.setattr(health, "_APP_CHECKS", {})
    monkeypatch.setattr(health, "_snapshot_fresh", lambda: snapshot)
    worker_heartbeat()
    body = api.get("/health").json()
    assert body["migrations"]["schemas_behind"] == 1000
    assert body["migrations"]["pending_truncated"] is True
    assert list(body["migrations"]["pending"]) == [f"org_{n:04}" for n in range(20)]


@pytest.mark.django_db
def test_it_fails_when_the_worker_heartbeat_is_stale(api):
    WorkerHeartbeat.objects.create(
        cluster="inventory", beat_at=timezone.now() - timezone.timedelta(hours=1)
    )
    response = api.get("/health")
    assert response.status_code == 503
    assert response.json()["failing"] == ["worker"]


@pytest.mark.django_db
def test_it_fails_when_no_worker_ever_beat(api):
    response = api.get("/health")
    assert response.status_code == 503
    assert response.json()["worker"]["last_heartbeat"] is None


@pytest.mark.django_db
def test_it_counts_the_organisations_checked_and_lists_none_when_all_are_whole(api, acme, globex):
    worker_heartbeat()
    body = api.get("/health").json()
    assert body["balances"].pop("age_seconds") < 5
    assert body["balances"].pop("checked_at")
    assert body["balances"] == {
        "ok": True,
        "organisations_checked": 2,
        "organisations": {},  # only those not whole are listed
    }


@pytest.mark.django_db
def test_it_fails_naming_the_organisation_whose_balance_table_is_gone(api, acme):
    # The guide's rollback SQL by hand: django_migrations still records the migration.
    worker_heartbeat()
    assert api.get("/health").status_code == 200  # the snapshot now says acme is fine
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
    assert "globex" not in body["balances"]["organisations"]
    assert body["balances"]["organisations_checked"] == 2


@pytest.mark.django_db
def test_it_reads_the_balance_objects_of_all_organisations_in_one_query(api, acme, globex):
    from django.db import connection as conn
    from django.test.utils import CaptureQueriesContext

    worker_heartbeat()
    with CaptureQueriesContext(conn) as queries:
        api.get("/health")
    catalog = [q for q in queries if "inventory_ledger_balance_trigger" in q["sql"]]
    assert len(catalog) == 1


@pytest.mark.django_db
def test_an_inactive_organisation_without_balances_does_not_fail_health(api, acme):
    from tenants.models import Organization

    worker_heartbeat()
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER inventory_ledger_balance_trigger ON acme.inventory_ledger")
    Organization.objects.filter(slug="acme").update(is_active=False)
    response = api.get("/health")
    assert response.status_code == 200, response.json()
    assert response.json()["balances"]["organisations"]["acme"] == {
        "ok": False,
        "table": True,
        "trigger": False,
        "trigger_enabled": False,
        "function": True,
        "active": False,
    }


@pytest.mark.django_db
def test_it_shows_a_hand_edited_django_migrations_at_the_next_refresh_with_its_age(api, acme):
    from operations.health import SNAPSHOT_MAX_AGE_SECONDS, health_snapshot_refresh
    from operations.models import HealthSnapshot

    worker_heartbeat()
    assert api.get("/health").status_code == 200
    with connection.cursor() as cursor:  # DML, not DDL: no event trigger sees it
        cursor.execute(
            "DELETE FROM acme.django_migrations WHERE app = 'inventory' AND name = '0003_ledger_append_only'"
        )
    body = api.get("/health").json()
    assert body["migrations"]["ok"] is True and body["migrations"]["age_seconds"] < 5
    health_snapshot_refresh()  # the worker, each minute
    response = api.get("/health")
    assert response.status_code == 503
    assert response.json()["migrations"]["pending"] == {
        "acme": ["inventory.0003_ledger_append_only"]
    }

    # Without a worker, a request recomputes a snapshot older than the stated age itself.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO acme.django_migrations (app, name, applied) "
            "VALUES ('inventory', '0003_ledger_append_only', now())"
        )
    old = timezone.now() - timezone.timedelta(seconds=SNAPSHOT_MAX_AGE_SECONDS + 1)
    HealthSnapshot.objects.update(checked_at=old)
    response = api.get("/health")
    assert response.status_code == 200, response.json()
    assert response.json()["migrations"]["age_seconds"] < 5


@pytest.mark.django_db
def test_it_sees_a_migrate_at_the_next_call(api, acme):
    from django.core.management import call_command

    from operations.models import HealthSnapshot

    worker_heartbeat()
    assert api.get("/health").status_code == 200
    # Nothing pending: the skipping executor (settings.GET_EXECUTOR_FUNCTION) does not run
    # migrate in acme at all, so nothing changed and the snapshot stays true.
    call_command("migrate_schemas", schema_name="acme", interactive=False, verbosity=0)
    assert HealthSnapshot.objects.exists()
    # A migrate that does run in the schema (--fake runs every schema) empties it.
    call_command("migrate_schemas", schema_name="acme", fake=True, interactive=False, verbosity=0)
    assert not HealthSnapshot.objects.exists()  # post_migrate emptied it


def _relation_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation'"
        )
        return cursor.fetchone()[0]


def _health_cost(api) -> tuple[int, int, float]:
    """Queries, relation locks held and seconds of one /health, the snapshot being current."""
    import time

    from django.db import transaction
    from django.test.utils import CaptureQueriesContext

    # In one transaction, so every lock the request takes is still held when counted.
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        response = api.get("/health")
        elapsed = time.perf_counter() - started
        locks = _relation_locks()
    assert response.status_code == 200, response.json()
    return len(queries), locks, elapsed


def test_it_costs_the_same_queries_and_locks_with_62_organisations_as_with_2(committed, api):
    from operations.health import health_snapshot_refresh
    from operations.models import HealthSnapshot
    from tenants.models import Organization

    worker_heartbeat()
    fakes = [f"h20_scale_{n:02d}" for n in range(60)]
    try:
        health_snapshot_refresh()
        queries_3, locks_3, _ = _health_cost(api)
        fake_organisations_create(fakes)
        health_snapshot_refresh()
        assert (
            api.get("/health").json()["migrations"]["schemas_checked"] == 63
        )  # public, acme, globex and 60
        queries_63, locks_63, elapsed = _health_cost(api)
        assert queries_63 == queries_3
        assert locks_63 == locks_3 <= 16, (locks_3, locks_63)
        assert elapsed < 0.2  # 20 ms on an idle machine; the 2 cores here are shared
    finally:
        with connection.cursor() as cursor:
            for schema in fakes:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        Organization.objects.filter(schema_name__in=fakes).delete()
        HealthSnapshot.objects.all().delete()


@pytest.mark.django_db
def test_it_migrates_only_the_schemas_with_a_pending_migration(acme, globex, monkeypatch):
    from django.core.management import call_command
    from django_tenants.management.commands import migrate_schemas
    from django_tenants.signals import schema_pre_migration

    from operations.migrate_executor import executor_get, schemas_behind

    assert schemas_behind(["acme", "globex"]) == []
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM globex.django_migrations WHERE app = 'inventory' AND name = '0003_ledger_append_only'"
        )
    assert schemas_behind(["acme", "globex"]) == ["globex"]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO globex.django_migrations (app, name, applied) "
            "VALUES ('inventory', '0003_ledger_append_only', now())"
        )

    monkeypatch.setattr(migrate_schemas, "GET_EXECUTOR_FUNCTION", executor_get)
    migrated = []

    def record(sender, schema_name, **kwargs):
        migrated.append(schema_name)

    schema_pre_migration.connect(record)
    try:
        call_command("migrate_schemas", tenant=True, interactive=False, verbosity=0)
        assert migrated == []
        # Asking for a target migration runs in every schema, as django-tenants does.
        call_command("migrate_schemas", "inventory", tenant=True, interactive=False, verbosity=0)
        assert set(migrated) >= {"acme", "globex"}
    finally:
        schema_pre_migration.disconnect(record)
