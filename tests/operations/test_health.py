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
