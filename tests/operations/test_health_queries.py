"""What one /health call costs the database, counted, so that it cannot silently grow again
(issue 18.5): with the snapshot current, one statement on the platform host (snapshot rows,
newest heartbeat, backup status), plus pg_stat_archiver's row when backups exist and the server
archives WAL, plus the routing query on any other host; the same with more organisations."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from operations.health import health_snapshot_refresh
from operations.models import BackupCheck, BackupRecord, RestoreDrill
from operations.tasks import worker_heartbeat
from tests.operations.fake_orgs import fake_organisations_create


def _archiving() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SHOW archive_mode")
        return cursor.fetchone()[0] != "off"


def _health_queries(host: str = "localhost") -> tuple[int, list[str], dict]:
    client = Client(HTTP_HOST=host)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/health")
    assert response.status_code == 200, response.json()
    return len(queries), [q["sql"] for q in queries], response.json()


def _backups_present() -> BackupRecord:
    now = timezone.now()
    record = BackupRecord.objects.create(
        file_name="b.dump", status="ok", started_at=now, finished_at=now, size_bytes=10
    )
    BackupCheck.objects.create(ok=True, message="fine", backup=record)
    RestoreDrill.objects.create(started_at=now, ok=True, message="restored", duration_seconds=2)
    return record


def _more_organisations(count: int) -> None:
    """Rolled back with the test."""
    fake_organisations_create([f"hq_extra_{n:02d}" for n in range(count)])


@pytest.mark.django_db
def test_one_statement_without_backups_and_the_same_with_more_organisations(acme, globex):
    worker_heartbeat()
    health_snapshot_refresh()
    count, sql, body = _health_queries()
    assert count == 1, sql
    assert "operations_health_snapshot" in sql[0] and "operations_worker_heartbeats" in sql[0]
    assert "backups" not in body

    _more_organisations(5)
    health_snapshot_refresh()  # the worker's minute (the DDL above emptied the snapshot)
    count, sql, body = _health_queries()
    assert body["migrations"]["schemas_checked"] == 8  # public, acme, globex and 5
    assert body["balances"]["organisations_checked"] == 7
    assert count == 1, sql


@pytest.mark.django_db
def test_with_backups_one_statement_and_the_archivers_row(acme, globex):
    worker_heartbeat()
    _backups_present()
    health_snapshot_refresh()
    archiving = _archiving()
    count, sql, body = _health_queries()
    assert count == 1 + archiving, sql
    if archiving:
        assert "pg_stat_archiver" in sql[1] and body["backups"]["wal_archiving"]["ok"] is not None
    else:
        assert body["backups"]["wal_archiving"] is None
    assert body["backups"]["newest"] == "b.dump"
    assert body["backups"]["last_monitor"]["message"] == "fine"
    assert body["backups"]["last_drill"]["message"] == "restored"

    _more_organisations(5)
    health_snapshot_refresh()
    count_more, sql, body = _health_queries()
    assert body["migrations"]["schemas_checked"] == 8
    assert count_more == count, sql


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["acme.localhost", "127.0.0.1", "nobody.localhost"])
def test_on_any_host_the_one_statement_and_no_routing(acme, globex, host):
    """operations/middleware.py answers /health ahead of tenant routing: no routing query on
    a tenant host, an IP (a load balancer's probe) or a name that routes nowhere (a 404 for
    anything else)."""
    worker_heartbeat()
    health_snapshot_refresh()
    count, sql, _ = _health_queries(host)
    assert count == 1, sql
    assert "operations_health_snapshot" in sql[0]
    if host == "nobody.localhost":  # routing refuses every other path on it
        response = Client(HTTP_HOST=host).get("/login/")
        assert response.status_code == 404


@pytest.mark.django_db
def test_the_early_answer_keeps_the_views_rules_and_the_security_headers(acme):
    worker_heartbeat()
    health_snapshot_refresh()
    client = Client(HTTP_HOST="acme.localhost")
    response = client.get("/health")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]  # never_cache
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware, before it
    assert "Set-Cookie" not in response  # no session touched
    post = client.post("/health")
    assert post.status_code == 405  # require_GET
    # Only the exact path: /health/ and /healthz go through routing as before.
    assert client.get("/healthz").status_code == 404


@pytest.mark.django_db
def test_health_says_what_newest_backup_status_read_on_its_own_says(acme):
    """/health's combined statement and newest_backup_status()'s own read judge alike, here with
    every kind of problem at once: an old newest backup, a failing monitor run after it, a stale
    drill, and an older failed backup before them."""
    from operations.backups import newest_backup_status

    worker_heartbeat()
    health_snapshot_refresh()
    now = timezone.now()
    BackupRecord.objects.create(
        file_name="old.dump", status="failed", started_at=now - timezone.timedelta(days=20)
    )
    newest = BackupRecord.objects.create(
        file_name="n.dump",
        status="ok",
        started_at=now - timezone.timedelta(days=2),
        finished_at=now - timezone.timedelta(days=2),
        size_bytes=7,
    )
    BackupCheck.objects.create(ok=False, message="newest backup is unreadable", backup=newest)
    RestoreDrill.objects.create(
        started_at=now - timezone.timedelta(days=9), ok=True, message="ok", duration_seconds=1
    )
    response = Client(HTTP_HOST="localhost").get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["backups"]
    via_health = body["backups"]
    alone = newest_backup_status()
    for status in (via_health, alone):
        status.pop("age_seconds")
        if status["wal_archiving"] is not None:  # "... N s ago": the seconds may tick between
            status["wal_archiving"].pop("message")
    assert via_health == alone  # its datetimes are isoformat strings already
    message = via_health["message"]
    assert "newest backup is older than" in message
    assert "backup monitor: newest backup is unreadable" in message
    assert "last good restore drill is 9.0 days old (limit 8)" in message


@pytest.mark.django_db
def test_an_unreachable_snapshot_statement_is_the_database_failing(monkeypatch):
    """The database check is the statement answering: when it cannot, /health says so (503)
    and stops there."""
    from django.db import OperationalError

    import operations.health as health

    def refuse():
        raise OperationalError("connection refused")

    monkeypatch.setattr(health, "_live_read", refuse)
    response = Client(HTTP_HOST="localhost").get("/health")
    assert response.status_code == 503
    assert response.json() == {
        "status": "failing",
        "failing": ["database"],
        "database": {"ok": False, "error": "connection refused"},
    }
