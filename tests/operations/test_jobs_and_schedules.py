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

from operations.jobs import job_run_create
from operations.models import JobRun
from operations.schedules import SCHEDULES
from operations.tasks import job_run_task
from reconciliation.models import ReconciliationRun
from reconciliation.tasks import reconcile_all_scheduled, reconcile_tenant, scheduled_mode
from tests.inventory.helpers import balance_mismatches, make_catalog

pytestmark = pytest.mark.django_db


def test_schedules_are_created_once_however_often_setup_runs(capsys):
    call_command("setup_schedules")
    call_command("setup_schedules")
    call_command("setup_schedules")
    schedules = {s.name: s for s in Schedule.objects.all()}
    assert set(schedules) == {s.name for s in SCHEDULES} >= {
        "worker heartbeat",
        "backup database",
        "reconcile balances",  # declared by reconciliation
        "monitor backups",
        "evaluate alerts",  # declared by alerts
    }
    assert Schedule.objects.count() == len(SCHEDULES)
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
    summary = reconcile_tenant(schema_name="globex", mode="full")
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
    result = job_run_task(job_id=job.id)
    job.refresh_from_db()
    assert job.status == "succeeded" and job.done == job.total >= 1 and job.percent == 100
    assert job.result["ledger_rows"] == 1 == result["ledger_rows"]
    assert job.started_at and job.finished_at and "ledger rows read" in job.message
    assert balance_mismatches("acme") == []


def test_a_failing_job_records_its_error(acme):
    job = job_run_create(kind="validate", schema_name="nope")
    with pytest.raises(Exception):  # noqa: B017 - any failure must be recorded
        job_run_task(job_id=job.id)
    job.refresh_from_db()
    assert job.status == "failed" and job.error and job.finished_at


def test_a_validation_job_reports_each_check(acme):
    job = job_run_create(kind="validate", schema_name="acme")
    job_run_task(job_id=job.id)
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


# --- runs whose worker died (issue 17.7) -----------------------------------------------------------


def _other_session():
    """A second database session, as a live worker's would be."""
    from tests.conftest import Committed

    return Committed().connect("public", autocommit=True)


def _hold_job_lock(session, kind: str, schema_name: str) -> None:
    from operations.jobs import LOCK_NAMESPACE, _lock_key

    session.execute(
        "SELECT pg_advisory_lock(%s, %s)", [LOCK_NAMESPACE, _lock_key(kind, schema_name)]
    )


def _running(kind="backfill", schema_name="acme", **fields) -> JobRun:
    from django.utils import timezone

    now = timezone.now()
    defaults = {"started_at": now, "heartbeat_at": now, "worker": "box pid 4242"}
    return JobRun.objects.create(
        kind=kind, schema_name=schema_name, status="running", **(defaults | fields)
    )


def test_it_marks_a_running_job_whose_worker_session_is_gone_interrupted(acme):
    from operations.jobs import job_runs_reap

    job = _running()
    finished = job_run_create(kind="validate", schema_name="acme")
    JobRun.objects.filter(pk=finished.pk).update(status="succeeded")
    assert job_runs_reap() == [job.id]
    job.refresh_from_db()
    assert job.status == "interrupted" and job.finished_at and job.message == "interrupted"
    assert "box pid 4242" in job.error and "stopped before the job finished" in job.error
    assert JobRun.objects.get(pk=finished.pk).status == "succeeded"
    assert job_runs_reap() == []


def test_it_leaves_a_live_run_alone_until_its_heartbeat_lapses(acme, settings):
    from django.utils import timezone

    from operations.jobs import job_runs_reap

    settings.JOB_STALE_SECONDS = 120
    job = _running()
    session = _other_session()
    try:
        _hold_job_lock(session, "backfill", "acme")
        assert job_runs_reap() == []
        JobRun.objects.filter(pk=job.pk).update(
            heartbeat_at=timezone.now() - timezone.timedelta(seconds=121)
        )
        assert job_runs_reap() == [job.id]
    finally:
        session.close()
    job.refresh_from_db()
    assert job.status == "interrupted" and "No heartbeat" in job.error


def test_a_queued_run_whose_task_is_gone_is_interrupted(acme):
    from django.utils import timezone
    from django_q.tasks import async_task

    from operations.jobs import job_runs_reap

    lost = job_run_create(kind="backfill", schema_name="acme")
    waiting = job_run_create(kind="backfill", schema_name="globex")
    task_id = async_task("operations.tasks.job_run_task", job_id=waiting.id)
    long_ago = timezone.now() - timezone.timedelta(minutes=5)
    JobRun.objects.filter(pk=lost.pk).update(task_id="0" * 32, created_at=long_ago)
    JobRun.objects.filter(pk=waiting.pk).update(task_id=task_id, created_at=long_ago)
    assert job_runs_reap() == [lost.id]
    assert "queued task is gone" in JobRun.objects.get(pk=lost.pk).error
    assert JobRun.objects.get(pk=waiting.pk).status == "queued"


def test_a_task_handed_out_again_does_not_run_its_job_twice(acme):
    """django-q2 hands a dead worker's task out again after Q_CLUSTER retry: nothing happens."""
    _skew("acme", "3")
    for status in ("interrupted", "succeeded", "failed"):
        job = job_run_create(kind="backfill", schema_name="acme")
        JobRun.objects.filter(pk=job.pk).update(status=status, message="as it was")
        job_run_task(job_id=job.id)
        job.refresh_from_db()
        assert job.status == status and job.message == "as it was" and job.started_at is None
    assert balance_mismatches("acme") != []


def test_a_running_run_handed_out_again_is_interrupted_not_rerun(acme):
    _skew("acme", "3")
    job = _running()
    job_run_task(job_id=job.id)  # nobody holds its lock: its worker is gone
    job.refresh_from_db()
    assert job.status == "interrupted" and balance_mismatches("acme") != []


def test_a_run_never_executes_beside_a_live_one_of_the_same_job(acme):
    from operations.jobs import job_run_execute

    job = job_run_create(kind="backfill", schema_name="acme")
    session = _other_session()
    try:
        _hold_job_lock(session, "backfill", "acme")
        calls = []
        job_run_execute(job.id, lambda progress: calls.append(1) or {})
    finally:
        session.close()
    job.refresh_from_db()
    assert calls == [] and job.status == "failed" and "still executing" in job.error


def test_a_run_stopped_with_ctrl_c_is_interrupted(acme):
    from operations.jobs import job_run_execute

    job = job_run_create(kind="backfill", schema_name="acme")

    def work(progress):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        job_run_execute(job.id, work)
    job.refresh_from_db()
    assert job.status == "interrupted" and "KeyboardInterrupt" in job.error


def test_it_refuses_a_second_start_of_the_same_job(acme):
    from django_q.models import OrmQ

    from operations.dispatch import job_start
    from operations.jobs import JobAlreadyRunning

    first = job_start(kind="backfill", schema_name="acme", requested_by="ann")
    second = job_start(kind="backfill", schema_name="acme", requested_by="bob")
    assert second.id == first.id and second.refused and not getattr(first, "refused", False)
    assert "already queued (job" in second.refusal and "started by ann" in second.refusal
    assert JobRun.objects.count() == 1 and OrmQ.objects.count() == 1
    with pytest.raises(JobAlreadyRunning):  # the shell's door refuses too
        job_run_create(kind="backfill", schema_name="acme")
    other = job_start(kind="backfill", schema_name="globex")  # another schema is another job
    assert not getattr(other, "refused", False) and OrmQ.objects.count() == 2


def test_a_start_after_a_dead_run_is_not_refused(acme):
    from operations.dispatch import job_start

    dead = _running()
    job = job_start(kind="backfill", schema_name="acme")
    assert job.id != dead.id and not getattr(job, "refused", False)
    assert JobRun.objects.get(pk=dead.pk).status == "interrupted"


# --- the page of a run whose worker died ----------------------------------------------------------


@pytest.fixture
def admin_client(db):
    from django.test import Client

    from tests.factories import PASSWORD, make_user

    client = Client(HTTP_HOST="localhost")
    assert client.login(
        username=make_user("jobs-admin", superuser=True).username, password=PASSWORD
    )
    return client


HX = {"HTTP_HX_REQUEST": "true"}


def test_the_page_shows_a_dead_run_interrupted_with_a_restart_and_stops_polling(admin_client, acme):
    job = _running()
    response = admin_client.get(f"/jobs/{job.id}/", **HX)
    html = response.content.decode()
    assert response.status_code == 200 and response["HX-Trigger"] == "job-finished"
    assert 'data-status="interrupted"' in html and "hx-get" not in html
    assert 'hx-post="/orgs/acme/runbook/jobs/backfill/"' in html and "Restart backfill" in html
    assert JobRun.objects.get(pk=job.pk).status == "interrupted"


def test_it_keeps_polling_a_live_run(admin_client, acme):
    job = _running()
    session = _other_session()
    try:
        _hold_job_lock(session, "backfill", "acme")
        response = admin_client.get(f"/jobs/{job.id}/", **HX)
    finally:
        session.close()
    assert "HX-Trigger" not in response and f'hx-get="/jobs/{job.id}/"' in response.content.decode()


def test_restart_buttons_post_to_the_door_that_started_the_job(admin_client, acme):
    reconcile = _running(kind="reconcile", params={"mode": "incremental"})
    backup = _running(kind="backup", schema_name="")
    rollback = _running(kind="rollback")
    html = admin_client.get(f"/jobs/{reconcile.id}/", **HX).content.decode()
    assert 'hx-post="/reconciliation/run/"' in html
    assert 'name="org" value="acme"' in html and 'name="mode" value="incremental"' in html
    html = admin_client.get(f"/jobs/{backup.id}/", **HX).content.decode()
    assert 'hx-post="/backups/now/"' in html
    html = admin_client.get(f"/jobs/{rollback.id}/", **HX).content.decode()
    assert "<button" not in html and "Start it again from the runbook" in html


def test_the_restart_button_starts_a_new_run(admin_client, acme):
    from django_q.models import OrmQ

    dead = _running()
    admin_client.get(f"/jobs/{dead.id}/", **HX)
    response = admin_client.post("/orgs/acme/runbook/jobs/backfill/", **HX)
    new = JobRun.objects.exclude(pk=dead.pk).get()
    assert response.status_code == 200 and f'id="jobrun-{new.id}"' in response.content.decode()
    assert new.status == "queued" and new.task_id and OrmQ.objects.count() == 1


def test_a_second_start_from_the_page_queues_nothing_and_says_so(admin_client, acme):
    from django_q.models import OrmQ

    admin_client.post("/orgs/acme/runbook/jobs/backfill/", **HX)
    response = admin_client.post("/orgs/acme/runbook/jobs/backfill/", **HX)
    job = JobRun.objects.get()
    html = response.content.decode()
    assert f'id="jobrun-{job.id}"' in html and "is already queued" in html
    assert OrmQ.objects.count() == 1


# --- job kinds that apps declare (issue 10.2) ------------------------------------------------------


def test_it_runs_a_registered_kind_with_the_options_kept_on_the_run(acme, monkeypatch):
    from django_q.models import OrmQ

    from operations import registry
    from operations.dispatch import job_start
    from operations.registry import JobResult, job_kind_register

    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))  # the test's kind goes after
    calls = []

    @job_kind_register("zz_probe", options={"n": 1})
    def probe(*, schema_name, progress, n=1, requested_by=""):
        calls.append((schema_name, n, requested_by, connection.schema_name))
        progress(1, 2, "half")
        return JobResult(summary=f"{n} probed", data={"n": n})

    job = job_start(kind="zz_probe", schema_name="acme", requested_by="ann", n=3)
    assert JobRun.objects.get(pk=job.pk).params == {"n": 3}
    [queued] = OrmQ.objects.all()
    assert queued.func() == "operations.tasks.job_run_task"
    assert queued.args() == () and queued.kwargs()["job_id"] == job.id
    result = job_run_task(job_id=job.id)
    job.refresh_from_db()
    assert calls == [("acme", 3, "ann", "public")]
    assert result == {"n": 3, "ok": True, "summary": "3 probed"} == job.result
    assert (job.status, job.message, job.done, job.total) == ("succeeded", "3 probed", 1, 2)


def test_it_refuses_an_unknown_kind_or_option_and_records_nothing(acme):
    from django_q.models import OrmQ

    from operations.dispatch import job_start

    with pytest.raises(ValueError, match="unknown job kind 'nope'"):
        job_start(kind="nope", schema_name="acme")
    with pytest.raises(TypeError, match="backfill job: unknown option"):
        job_start(kind="backfill", schema_name="acme", mode="full")
    assert JobRun.objects.count() == 0 and OrmQ.objects.count() == 0


def test_it_registers_every_kind_from_the_app_that_owns_it():
    from operations.registry import job_kind

    expected = {
        "backfill": "inventory.jobs",
        "validate": "inventory.jobs",
        "repair": "inventory.jobs",
        "rollback": "inventory.jobs",
        "reconcile": "reconciliation.jobs",
        "backup": "operations.tasks",
        "migrate": "operations.tasks",
    }
    assert {kind: job_kind(kind).func.__module__ for kind in expected} == expected


def test_the_job_runner_names_no_other_app():
    """operations runs the jobs the apps declare; it imports and names none of them."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "operations"
    named = []
    for name in ("dispatch.py", "jobs.py", "registry.py", "tasks.py", "apps.py", "schedules.py"):
        tree = ast.parse((root / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = node.module
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                module = node.value
            else:
                continue
            if module.split(".")[0] in {"inventory", "reconciliation", "dashboard", "alerts"}:
                named.append(f"{name}: {module}")
    assert named == []


# --- every command that is a job: one already under way is one line, the others still run --------

PER_TENANT_COMMANDS = [
    ("backfill_balances", [], "backfill"),
    ("validate_migration", [], "validate"),
    ("repair_balances", [], "repair"),
    ("reconcile_balances", ["--full"], "reconcile"),
]


@pytest.mark.parametrize("command,args,kind", PER_TENANT_COMMANDS)
def test_it_reports_a_run_already_under_way_in_one_line_and_runs_the_other_schemas(
    acme, globex, command, args, kind
):
    from io import StringIO

    from django.core.management.base import CommandError

    busy = job_run_create(kind=kind, schema_name="acme", requested_by="page-user")
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as failed:
        call_command(command, *args, stdout=out, stderr=err)
    assert failed.value.returncode == 1 and "acme" in str(failed.value)
    assert err.getvalue().splitlines() == [
        f"acme: a {kind} job for acme is already queued (job {busy.id}, started by page-user); "
        "not started again"
    ]
    runs = {(j.schema_name, j.id == busy.id): j.status for j in JobRun.objects.all()}
    assert runs == {("acme", True): "queued", ("globex", False): "succeeded"}
    if command != "validate_migration":  # which prints its checks instead
        assert f"globex: {JobRun.objects.get(schema_name='globex').message}" in out.getvalue()


def test_a_rollback_already_under_way_drops_nothing(acme):
    from io import StringIO

    from django.core.management.base import CommandError

    busy = job_run_create(kind="rollback", schema_name="acme")
    err = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("rollback_balances", "--schema", "acme", stderr=err)
    assert failed.value.returncode == 1
    assert err.getvalue().splitlines() == [
        f"acme: a rollback job for acme is already queued (job {busy.id}); not started again"
    ]
    assert JobRun.objects.count() == 1
    with schema_context("acme"), connection.cursor() as cur:
        cur.execute("SELECT to_regclass('inventory_balances') IS NOT NULL")
        assert cur.fetchone()[0] is True


def test_a_backup_already_under_way_is_the_commands_one_error_line(db):
    from io import StringIO

    from django.core.management.base import CommandError

    from operations.models import BackupRecord

    busy = job_run_create(kind="backup", requested_by="schedule")
    err = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("backup_database", stderr=err)
    assert failed.value.returncode == 1 and err.getvalue() == ""
    assert str(failed.value) == (
        f"a backup job for the platform is already queued (job {busy.id}, started by schedule); "
        "not started again"
    )
    assert JobRun.objects.count() == 1 and BackupRecord.objects.count() == 0


def test_it_reads_the_heartbeat_and_stale_seconds_from_the_environment():
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import django; django.setup(); from operations.jobs import heartbeat_seconds, "
        "stale_seconds; print(heartbeat_seconds(), stale_seconds())"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    run = lambda **extra: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env={k: v for k, v in env.items() if not k.startswith("JOB_")} | extra,
        capture_output=True,
        text=True,
        timeout=60,
    )
    defaults, given = run(), run(JOB_HEARTBEAT_SECONDS="3", JOB_STALE_SECONDS="45")
    assert defaults.stdout.split() == ["10.0", "120.0"], defaults.stderr[-2000:]
    assert given.stdout.split() == ["3.0", "45.0"], given.stderr[-2000:]
