"""Backups: an archive written atomically, pruning, the monitor's every failure, and a restore
into a fresh database giving the same balances."""

from __future__ import annotations

import subprocess
from decimal import Decimal

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_tenants.utils import schema_context

from operations.backups import backup_create, backups_monitor, pg_tool
from operations.models import BackupCheck, BackupRecord
from tests.inventory.helpers import make_catalog


@pytest.fixture
def backup_dir(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"
    return settings.BACKUP_DIR


@pytest.mark.django_db
def test_it_writes_a_complete_archive_with_size_and_checksum(backup_dir):
    import hashlib

    record = backup_create()
    path = backup_dir / record.file_name
    assert record.status == "ok" and path.exists() and record.size_bytes == path.stat().st_size > 0
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record.duration_seconds > 0
    assert list(backup_dir.glob("*.partial")) == []
    listing = subprocess.run(
        [pg_tool("pg_restore"), "--list", str(path)], capture_output=True, text=True
    )
    assert "inventory_ledger" in listing.stdout


@pytest.mark.django_db
def test_a_failed_dump_leaves_no_file_and_is_recorded(backup_dir, monkeypatch):
    monkeypatch.setenv("PG_BIN_DIR", "/nonexistent")
    with pytest.raises(FileNotFoundError):
        backup_create()
    record = BackupRecord.objects.get()
    assert record.status == "failed" and "nonexistent" in record.error
    assert list(backup_dir.iterdir()) == []


@pytest.mark.django_db
def test_it_prunes_backups_beyond_the_retention(backup_dir, settings):
    settings.BACKUP_RETENTION = 2
    records = [backup_create() for _ in range(3)]
    assert sorted(p.name for p in backup_dir.iterdir()) == sorted(r.file_name for r in records[1:])
    records[0].refresh_from_db()
    assert records[0].status == "pruned"


@pytest.mark.django_db
def test_the_monitor_passes_on_a_good_backup(backup_dir, capsys):
    backup_create()
    call_command("monitor_backups")
    assert "readable" in capsys.readouterr().out
    assert BackupCheck.objects.get().ok


@pytest.mark.django_db
def test_the_monitor_fails_without_any_backup(backup_dir):
    with pytest.raises(CommandError) as err:
        call_command("monitor_backups")
    assert err.value.returncode == 1 and "no backup has been taken" in str(err.value)
    assert BackupCheck.objects.get().ok is False


@pytest.mark.django_db
def test_the_monitor_fails_on_an_old_backup(backup_dir):
    record = backup_create()
    BackupRecord.objects.filter(pk=record.pk).update(
        started_at=timezone.now() - timezone.timedelta(hours=27)
    )
    result = backups_monitor()
    assert not result.ok and "27.0 h old (limit 26 h)" in result.message
    assert backups_monitor(max_age_hours=48).ok


@pytest.mark.django_db
def test_the_monitor_fails_on_a_missing_file(backup_dir):
    record = backup_create()
    (backup_dir / record.file_name).unlink()
    assert "missing" in backups_monitor().message


@pytest.mark.django_db
def test_the_monitor_fails_on_an_empty_file(backup_dir):
    record = backup_create()
    (backup_dir / record.file_name).write_bytes(b"")
    assert "is empty" in backups_monitor().message


@pytest.mark.django_db
def test_the_monitor_fails_when_much_smaller_than_the_previous(backup_dir):
    first = backup_create()
    BackupRecord.objects.filter(pk=first.pk).update(
        size_bytes=first.size_bytes * 10, started_at=timezone.now() - timezone.timedelta(hours=24)
    )
    backup_create()
    result = backups_monitor()
    assert not result.ok and "less than 50% of the previous one" in result.message


@pytest.mark.django_db
def test_the_monitor_fails_on_an_unreadable_file(backup_dir):
    record = backup_create()
    path = backup_dir / record.file_name
    path.write_bytes(b"\x00garbage" * (record.size_bytes // 8 + 1))
    result = backups_monitor()
    assert not result.ok and "unreadable" in result.message


@pytest.mark.django_db
def test_health_reports_the_newest_backups_age(backup_dir, api):
    from operations.tasks import worker_heartbeat

    worker_heartbeat()
    assert "backups" not in api.get("/health").json()  # none attempted yet
    record = backup_create()
    body = api.get("/health").json()
    assert (
        body["backups"]["ok"]
        and body["backups"]["newest"] == record.file_name
        and body["backups"]["age_seconds"] < 60
    )
    BackupRecord.objects.filter(pk=record.pk).update(
        started_at=timezone.now() - timezone.timedelta(days=2)
    )
    response = api.get("/health")
    assert response.status_code == 503 and response.json()["failing"] == ["backups"]


def test_a_backup_restored_into_a_new_database_gives_the_same_balances(committed, backup_dir):
    from inventory.services.posting import ledger_entries_create

    with schema_context("acme"):
        items, locations, lots = make_catalog(items=5, locations=2, lots_per_item=1)
        ledger_entries_create(
            entries=[
                {"item": i.sku, "location": loc.code, "qty": f"{n}.125", "kind": "receipt"}
                for n, (i, loc) in enumerate((i, loc) for i in items for loc in locations)
            ]
        )
    record = backup_create()
    params = dict(committed.params)
    with psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS restore_check")
        admin.execute("CREATE DATABASE restore_check")
    try:
        conninfo = psycopg.conninfo.make_conninfo(
            **{
                k: v
                for k, v in {**params, "dbname": "restore_check"}.items()
                if k in ("dbname", "host", "port", "user", "password") and v
            }
        )
        restore = subprocess.run(
            [
                pg_tool("pg_restore"),
                "--no-owner",
                "--exit-on-error",
                "--dbname",
                conninfo,
                str(backup_dir / record.file_name),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert restore.returncode == 0, restore.stderr
        query = "SELECT item_id, location_id, lot_key, qty_canonical FROM acme.inventory_balances ORDER BY 1, 2, 3"
        with committed.connect("acme") as original, psycopg.connect(conninfo) as restored:
            expected = original.execute(query).fetchall()
            assert len(expected) == 10 and sum(r[3] for r in expected) == sum(
                Decimal(f"{n}.125") for n in range(10)
            )
            assert restored.execute(query).fetchall() == expected
            # The restored trigger works and writes the restored schema's own balances.
            restored.execute(
                "INSERT INTO acme.inventory_ledger (item_id, location_id, qty_canonical, kind, reference, "
                "occurred_at, recorded_at, recorded_by) VALUES (%s, %s, 1, 'receipt', '', now(), now(), '')",
                [expected[0][0], expected[0][1]],
            )
            after = restored.execute(
                "SELECT qty_canonical FROM acme.inventory_balances WHERE item_id = %s "
                "AND location_id = %s AND lot_key = 0",
                [expected[0][0], expected[0][1]],
            ).fetchone()
            assert after[0] == expected[0][3] + 1
    finally:
        with psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS restore_check")


# --- every door records the same job run (issue 16.13) -------------------------------------------


@pytest.mark.django_db
def test_a_command_line_backup_is_recorded_as_a_job_run(backup_dir, capsys):
    from operations.models import JobRun

    call_command("backup_database")
    job = JobRun.objects.get()
    record = BackupRecord.objects.get()
    assert job.kind == "backup" and job.status == "succeeded" and job.schema_name == ""
    assert job.requested_by.startswith("cli") and job.started_at and job.finished_at
    assert job.result["file"] == record.file_name and job.result["size_bytes"] == record.size_bytes
    assert f"(job {job.id})" in capsys.readouterr().out


@pytest.mark.django_db
def test_a_command_line_backup_is_refused_while_one_runs(backup_dir):
    from operations.jobs import LOCK_NAMESPACE, _lock_key
    from operations.models import JobRun
    from tests.conftest import Committed

    running = JobRun.objects.create(
        kind="backup", status="running", started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    session = Committed().connect("public", autocommit=True)  # the live worker's session
    try:
        session.execute(
            "SELECT pg_advisory_lock(%s, %s)", [LOCK_NAMESPACE, _lock_key("backup", "")]
        )
        with pytest.raises(CommandError) as err:
            call_command("backup_database")
    finally:
        session.close()
    assert f"already running (job {running.id}" in str(err.value)
    assert JobRun.objects.count() == 1 and BackupRecord.objects.count() == 0


@pytest.mark.django_db
def test_a_failed_command_line_backup_is_recorded_as_failed(backup_dir, monkeypatch):
    from operations.models import JobRun

    monkeypatch.setenv("PG_BIN_DIR", "/nonexistent")
    with pytest.raises(CommandError) as err:
        call_command("backup_database")
    job = JobRun.objects.get()
    assert "backup failed" in str(err.value) and f"job {job.id}" in str(err.value)
    assert job.status == "failed" and "nonexistent" in job.error


@pytest.mark.django_db
def test_the_scheduled_backup_is_recorded_as_a_job_run(backup_dir):
    from operations.models import JobRun
    from operations.tasks import backup_database

    result = backup_database()
    job = JobRun.objects.get()
    assert job.requested_by == "schedule" and job.status == "succeeded"
    assert result["file"] == BackupRecord.objects.get().file_name


@pytest.mark.django_db
def test_the_backups_page_does_not_show_a_dead_backup_as_running(backup_dir):
    from django.test import Client

    from operations.models import JobRun
    from tests.factories import PASSWORD, make_user

    client = Client(HTTP_HOST="localhost")
    assert client.login(username=make_user("bk-admin", superuser=True).username, password=PASSWORD)
    dead = JobRun.objects.create(
        kind="backup", status="running", started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    html = client.get("/backups/").content.decode()
    assert f'id="jobrun-{dead.id}"' not in html and 'hx-get="/jobs/' not in html
    assert JobRun.objects.get(pk=dead.pk).status == "interrupted"
