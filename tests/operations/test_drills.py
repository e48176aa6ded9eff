"""The restore drill (issue 13.2): the newest backup (its off-site copy when there is one)
restored into a scratch database, validated, its figures compared with those recorded at backup
time, the scratch database dropped; the monitor fails on a stale drill."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_tenants.utils import schema_context

from operations.backups import backup_create, backups_monitor
from operations.drills import restore_drill, scratch_conninfo
from operations.models import BackupCheck, BackupRecord, JobRun, RestoreDrill
from tests.inventory.helpers import make_catalog
from tests.operations.s3server import offsite as offsite  # noqa: F401  (fixtures)
from tests.operations.s3server import s3_endpoint as s3_endpoint  # noqa: F401


@pytest.fixture
def backup_dir(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"
    return settings.BACKUP_DIR


@pytest.fixture
def clean_public(committed):
    yield committed
    RestoreDrill.objects.all().delete()  # the committed fixture does not know this table


def _post(n: int) -> None:
    from inventory.services.posting import ledger_entries_create

    with schema_context("acme"):
        items, locations, _ = make_catalog(items=n, locations=1, lots_per_item=0)
        ledger_entries_create(
            entries=[{"item": i.sku, "location": locations[0].code, "qty": "2.5", "kind": "receipt"} for i in items]
        )


def _databases() -> set[str]:
    with psycopg.connect(scratch_conninfo("postgres")) as conn:
        # Only drills' scratch databases: others create databases on this server too.
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'drill%%'")
        return {r[0] for r in rows.fetchall()}


def test_it_restores_the_remote_copy_validates_and_compares(clean_public, backup_dir, offsite, capsys):
    _post(4)
    record = backup_create()
    assert record.figures["acme"]["ledger_rows"] == 4
    assert Decimal(record.figures["acme"]["ledger_qty"]) == Decimal("10")
    (backup_dir / record.file_name).unlink()  # only the off-site copy is left
    before = _databases()
    call_command("restore_drill")
    drill = RestoreDrill.objects.get()
    assert drill.ok and drill.source == "remote" and drill.backup_file == record.file_name
    assert "acme" in drill.details["schemas"] and drill.details["mismatches"] == []
    assert drill.details["figures_restored"]["acme"]["ledger_rows"] == 4
    assert 0 < drill.duration_seconds < 60
    assert _databases() == before  # the scratch database is gone
    job = JobRun.objects.get(kind="restore_drill")
    assert job.status == "succeeded" and f"(job {job.id})" in capsys.readouterr().out


def test_it_fails_when_the_restore_differs_from_what_was_recorded(clean_public, backup_dir):
    _post(2)
    record = backup_create()
    figures = record.figures
    figures["acme"]["ledger_rows"] += 1
    BackupRecord.objects.filter(pk=record.pk).update(figures=figures)
    before = _databases()
    with pytest.raises(CommandError) as err:
        call_command("restore_drill")
    assert err.value.returncode == 1
    drill = RestoreDrill.objects.get()
    assert not drill.ok and drill.source == "local"
    assert "acme: ledger_rows 2 restored, 3 recorded" in drill.message
    assert _databases() == before
    assert JobRun.objects.get(kind="restore_drill").status == "failed"


def test_it_fails_on_a_corrupt_remote_copy(clean_public, backup_dir, offsite):
    record = backup_create()
    stored = bytearray(offsite.get_object(Bucket=offsite.bucket, Key=record.remote_key)["Body"].read())
    stored[len(stored) // 2] ^= 1
    offsite.put_object(Bucket=offsite.bucket, Key=record.remote_key, Body=bytes(stored))
    drill = restore_drill()
    assert not drill.ok and "another checksum" in drill.message


def test_it_fails_with_a_wrong_key_and_leaves_no_plain_copy(clean_public, backup_dir, offsite, monkeypatch):
    from tests.operations.s3server import new_key

    record = backup_create()
    monkeypatch.setenv("BACKUP_ENCRYPTION_KEY", new_key())
    drill = restore_drill()
    assert not drill.ok and drill.source == "" and "wrong key" in drill.message
    assert sorted(p.name for p in backup_dir.iterdir()) == [record.file_name]  # no drill-* left


@pytest.mark.django_db
def test_the_monitor_fails_on_a_stale_drill_and_health_shows_it(backup_dir, monkeypatch, api):
    from operations.tasks import worker_heartbeat

    worker_heartbeat()
    backup_create()
    RestoreDrill.objects.create(
        started_at=timezone.now() - timezone.timedelta(days=9), ok=True, message="old"
    )
    result = backups_monitor()
    assert not result.ok and "9.0 days old (limit 8)" in result.message
    response = api.get("/health")
    assert response.status_code == 503 and "restore drill" in response.json()["backups"]["message"]
    assert response.json()["backups"]["last_drill"]["message"] == "old"
    monkeypatch.setenv("BACKUP_DRILL_MAX_AGE_DAYS", "10")
    assert backups_monitor().ok
    assert BackupCheck.objects.count() == 2


# --- the backups page: drills beside backups, the buttons -----------------------------------------


@pytest.fixture
def admin_client():
    from django.test import Client

    from tests.factories import PASSWORD, make_user

    client = Client(HTTP_HOST="localhost")
    assert client.login(username=make_user("drill-admin", superuser=True).username, password=PASSWORD)
    return client


@pytest.fixture
def sync_jobs(monkeypatch):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.mark.django_db
def test_the_backups_page_shows_drills_and_failed_offsite_copies(admin_client):
    BackupRecord.objects.create(
        file_name="inventory-z.dump", status="ok", started_at=timezone.now(),
        remote_status="failed", remote_key="inv/inventory-z.dump.enc",
        remote_error="upload to s3://b/inv/inventory-z.dump.enc failed: AccessDenied",
    )
    RestoreDrill.objects.create(
        started_at=timezone.now(), ok=False, backup_file="inventory-z.dump", source="local",
        duration_seconds=3.2, message="acme: ledger_rows 2 restored, 3 recorded",
    )
    html = admin_client.get("/backups/").content.decode()
    assert 'id="restore-drills"' in html and "acme: ledger_rows 2 restored, 3 recorded" in html
    assert "AccessDenied" in html and 'action="/backups/drill/"' in html
    assert 'action="/backups/restore-org/"' in html and '<option value="acme">' in html


@pytest.mark.django_db
def test_the_drill_button_runs_a_recorded_drill(admin_client, backup_dir, sync_jobs):
    backup_create()
    response = admin_client.post("/backups/drill/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    job = JobRun.objects.get(kind="restore_drill")
    drill = RestoreDrill.objects.get()
    assert drill.ok and job.status == "succeeded" and job.requested_by == "drill-admin"
    assert drill.requested_by == "drill-admin"


@pytest.mark.django_db
def test_the_page_buttons_refuse_non_admins(backup_dir, sync_jobs):
    from django.test import Client

    from tests.factories import PASSWORD, make_user

    client = Client(HTTP_HOST="localhost")
    assert client.login(username=make_user("drill-user").username, password=PASSWORD)
    assert client.post("/backups/drill/").status_code == 403
    assert client.post("/backups/restore-org/", {"org": "acme"}).status_code == 403
    assert JobRun.objects.count() == 0 and RestoreDrill.objects.count() == 0
