"""Schedules made once, tasks in the right schema, job runs that record progress and outcome."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import connection
from django_q.models import Schedule
from django_tenants.utils import schema_context

from inventory.tasks import backfill_tenant, validate_tenant
from operations.jobs import job_run_create
from operations.models import JobRun
from reconciliation.models import ReconciliationRun
from reconciliation.tasks import reconcile_all_scheduled, reconcile_tenant, scheduled_mode
from tests.inventory.helpers import balance_mismatches, make_catalog

pytestmark = pytest.mark.django_db


def test_schedules_are_created_once_however_often_setup_runs(capsys):
    call_command("setup_schedules")
    call_command("setup_schedules")
    call_command("setup_schedules")
    schedules = {s.name: s for s in Schedule.objects.all()}
    assert set(schedules) == {
        "worker heartbeat",
        "backup database",
        "reconcile balances",
        "monitor backups",
    }
    assert Schedule.objects.count() == 4
    assert schedules["reconcile balances"].cron == "0 2 * * *"
    assert schedules["monitor backups"].cron == "0 3 * * *"
    assert schedules["reconcile balances"].next_run.astimezone(ZoneInfo("UTC")).hour == 2
    assert "up to date: reconcile balances" in capsys.readouterr().out


def test_setup_repairs_a_changed_schedule():
    call_command("setup_schedules")
    Schedule.objects.filter(name="monitor backups").update(cron="0 9 * * *")
    call_command("setup_schedules")
    assert Schedule.objects.get(name="monitor backups").cron == "0 3 * * *"


def test_reconciliation_is_full_on_sundays_and_incremental_otherwise():
    utc = ZoneInfo("UTC")
    assert scheduled_mode(datetime(2026, 11, 29, 2, 0, tzinfo=utc)) == "full"  # a Sunday
    assert scheduled_mode(datetime(2026, 11, 24, 2, 0, tzinfo=utc)) == "incremental"


def _skew(schema: str, by: str) -> None:
    with schema_context(schema):
        items, locations, _ = make_catalog(prefix=schema[:2].upper())
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO inventory_ledger (item_id, location_id, qty_canonical, kind, reference, "
                "occurred_at, recorded_at, recorded_by) VALUES (%s, %s, 10, 'receipt', '', now(), now(), '')",
                [items[0].id, locations[0].id],
            )
            cur.execute(
                "UPDATE inventory_balances SET qty_canonical = qty_canonical + %s", [Decimal(by)]
            )


def test_a_task_runs_in_its_own_schema_whatever_the_worker_was_left_in(acme, globex):
    _skew("globex", "0.001")
    _skew("acme", "0.002")
    # A worker whose previous task left the connection in acme:
    connection.set_tenant(acme)
    summary = reconcile_tenant("globex", "full")
    assert summary["schema"] == "globex" and summary["auto_corrected"] == 1
    assert balance_mismatches("globex") == [] and balance_mismatches("acme") != []
    assert ReconciliationRun.objects.get().organization == globex
    assert connection.schema_name == "acme"  # the task restored what it found


def test_a_platform_task_runs_in_public_on_purpose(acme):
    from operations.models import WorkerHeartbeat
    from operations.tasks import worker_heartbeat

    connection.set_tenant(acme)
    worker_heartbeat()
    with schema_context("public"):
        assert WorkerHeartbeat.objects.count() == 1


def test_the_schedule_reconciles_every_active_tenant(acme, globex, monkeypatch):
    from django_q.conf import Conf

    from tenants.services import organization_set_active

    monkeypatch.setattr(Conf, "SYNC", True)  # run the queued tasks inline
    _skew("acme", "0.003")
    _skew("globex", "5")
    assert reconcile_all_scheduled() == ["acme", "globex"]
    runs = {r.organization.slug: r for r in ReconciliationRun.objects.all()}
    assert runs["acme"].auto_corrected == 1 and runs["globex"].opened == 1
    organization_set_active(organization=globex, is_active=False)
    assert reconcile_all_scheduled() == ["acme"]


def test_a_backfill_job_records_progress_and_outcome(acme):
    _skew("acme", "3")
    job = job_run_create(kind="backfill", schema_name="acme", requested_by="admin")
    assert job.status == "queued"
    result = backfill_tenant("acme", job.id)
    job.refresh_from_db()
    assert job.status == "succeeded" and job.done == job.total >= 1 and job.percent == 100
    assert job.result["ledger_rows"] == 1 == result["ledger_rows"]
    assert job.started_at and job.finished_at and "ledger rows read" in job.message
    assert balance_mismatches("acme") == []


def test_a_failing_job_records_its_error(acme):
    job = job_run_create(kind="validate", schema_name="nope")
    with pytest.raises(Exception):  # noqa: B017 - any failure must be recorded
        validate_tenant("nope", job.id)
    job.refresh_from_db()
    assert job.status == "failed" and job.error and job.finished_at


def test_a_validation_job_reports_each_check(acme):
    job = job_run_create(kind="validate", schema_name="acme")
    validate_tenant("acme", job.id)
    job.refresh_from_db()
    assert job.status == "succeeded" and job.result["ok"] is True
    assert {c["name"] for c in job.result["checks"]} >= {
        "Balance trigger exists",
        "Balance trigger is enabled",
    }


def test_a_killed_run_is_marked_interrupted_and_the_next_run_proceeds(acme):
    from django.utils import timezone

    ReconciliationRun.objects.create(
        organization=acme, mode="full", started_at=timezone.now(), tolerance=Decimal("0.01")
    )
    with schema_context("acme"):
        from reconciliation.services import reconciliation_run

        run = reconciliation_run(mode="full")
    assert run.status == "succeeded"
    stale = ReconciliationRun.objects.exclude(pk=run.pk).get()
    assert stale.status == "failed" and "interrupted" in stale.error
    assert JobRun.objects.count() == 0
