"""Fleet runs (issue 11.1): one JobRun per organisation, `parallel` at a time in slug order,
advanced from the JobRuns' recorded outcomes; failures retried on their own; pause and cancel;
a real qcluster SIGKILLed mid-run, restarted, finishing with exactly one succeeded JobRun per
organisation."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Task

from dashboard.fleet_runs import (
    FLEET_TICK,
    FleetRunError,
    fleet_run_advance,
    fleet_run_cancel,
    fleet_run_pause,
    fleet_run_progress,
    fleet_run_resume,
    fleet_run_retry,
    fleet_run_start,
)
from dashboard.models import FleetRun, FleetRunItem
from operations.models import JobRun, WorkerHeartbeat
from operations.registry import job_run_registered
from tests.operations.test_killed_worker import _qcluster, _stop, wait_until


def _items(run) -> list[tuple[str, str]]:
    return [
        (i.organization.slug if i.organization else "", i.state)
        for i in FleetRunItem.objects.filter(fleet_run=run).select_related("organization")
    ]


def _job_of(run, slug: str) -> JobRun:
    return FleetRunItem.objects.get(fleet_run=run, organization__slug=slug).job_run


def test_it_starts_parallel_jobs_in_slug_order_and_advances_from_their_outcomes(acme, globex):
    run = fleet_run_start(operation="validate", orgs=[globex, acme], parallel=1, requested_by="t")
    assert _items(run) == [("acme", "running"), ("globex", "queued")]
    job = _job_of(run, "acme")
    assert (job.kind, job.schema_name, job.status) == ("validate", "acme", "queued")
    assert OrmQ.objects.count() == 1  # one task queued: the bound, not the fleet
    assert Schedule.objects.filter(name=FLEET_TICK, func="dashboard.fleet_runs.fleet_tick").exists()

    job_run_registered(job.pk)  # what the worker's task does
    run = fleet_run_advance(run.pk)
    assert _items(run) == [("acme", "done"), ("globex", "running")]
    job_run_registered(_job_of(run, "globex").pk)
    run = fleet_run_advance(run.pk)
    assert run.status == "finished" and run.finished_at is not None
    assert _items(run) == [("acme", "done"), ("globex", "done")]
    for schema in ("acme", "globex"):
        assert JobRun.objects.filter(kind="validate", schema_name=schema).count() == 1
    p = fleet_run_progress(run)
    assert (p["done"], p["failed"], p["queued"], p["total"], p["percent"]) == (2, 0, 0, 2, 100)
    assert p["seconds_left"] is None

    fleet_run_advance(run.pk)  # advancing a finished run starts nothing more
    assert JobRun.objects.filter(kind="validate").count() == 2


def test_it_queues_an_interrupted_org_again_and_retries_a_failed_one_on_its_own(acme, globex):
    run = fleet_run_start(operation="validate", orgs=[acme, globex], parallel=2)
    first_acme, first_globex = _job_of(run, "acme"), _job_of(run, "globex")
    # What the reaper records when the worker dies, and what a failing job records.
    JobRun.objects.filter(pk=first_acme.pk).update(status="interrupted", message="interrupted")
    JobRun.objects.filter(pk=first_globex.pk).update(
        status="failed", error="Traceback...\nValidationBroken: no balance table"
    )
    run = fleet_run_advance(run.pk)
    acme_item = FleetRunItem.objects.get(fleet_run=run, organization=acme)
    globex_item = FleetRunItem.objects.get(fleet_run=run, organization=globex)
    assert acme_item.state == "running" and acme_item.attempts == 2
    assert acme_item.job_run_id != first_acme.pk
    assert globex_item.state == "failed"
    assert globex_item.message == "ValidationBroken: no balance table"

    job_run_registered(acme_item.job_run_id)
    run = fleet_run_advance(run.pk)
    assert run.status == "finished" and _items(run) == [("acme", "done"), ("globex", "failed")]

    run = fleet_run_retry(run.pk, [globex_item.pk])
    assert run.status == "active" and _items(run) == [("acme", "done"), ("globex", "running")]
    job_run_registered(_job_of(run, "globex").pk)
    run = fleet_run_advance(run.pk)
    assert _items(run) == [("acme", "done"), ("globex", "done")]
    # acme's retry was not needed and did not happen: one succeeded run each.
    ok = JobRun.objects.filter(kind="validate", status="succeeded")
    assert sorted(ok.values_list("schema_name", flat=True)) == ["acme", "globex"]


def test_it_pauses_starts_nothing_new_and_cancel_skips_the_waiting(acme, globex):
    run = fleet_run_start(operation="validate", orgs=[acme, globex], parallel=1)
    fleet_run_pause(run.pk)
    job_run_registered(_job_of(run, "acme").pk)
    run = fleet_run_advance(run.pk)
    assert run.status == "paused" and _items(run) == [("acme", "done"), ("globex", "queued")]
    assert JobRun.objects.filter(schema_name="globex", kind="validate").count() == 0
    run = fleet_run_resume(run.pk)
    assert _items(run) == [("acme", "done"), ("globex", "running")]
    fleet_run_pause(run.pk)
    run = fleet_run_cancel(run.pk)
    assert run.status == "cancelled" and run.finished_at is None  # globex still running
    job_run_registered(_job_of(run, "globex").pk)
    run = fleet_run_advance(run.pk)
    assert run.finished_at is not None and _items(run) == [("acme", "done"), ("globex", "done")]
    with pytest.raises(FleetRunError, match="cancelled"):
        fleet_run_resume(run.pk)


def test_it_cancels_queued_orgs_as_skipped(acme, globex):
    run = fleet_run_start(operation="validate", orgs=[acme, globex], parallel=1)
    run = fleet_run_cancel(run.pk)
    assert _items(run) == [("acme", "running"), ("globex", "skipped")]


def test_it_backs_up_the_fleet_as_one_job(acme, globex):
    run = fleet_run_start(operation="backup", orgs=[acme, globex], parallel=2)
    assert _items(run) == [("", "running")]
    job = FleetRunItem.objects.get(fleet_run=run).job_run
    assert (job.kind, job.schema_name) == ("backup", "")


def test_it_refuses_bad_starts_and_writes_nothing(acme):
    for kwargs, message in [
        ({"operation": "drop", "orgs": [acme]}, "unknown operation"),
        ({"operation": "validate", "orgs": [acme], "parallel": 0}, "parallel"),
        ({"operation": "validate", "orgs": []}, "no organisations"),
    ]:
        with pytest.raises(FleetRunError, match=message):
            fleet_run_start(**kwargs)
    assert not FleetRun.objects.exists() and not JobRun.objects.exists()


def test_it_starts_a_fleet_run_from_the_command(acme, globex, capsys):
    call_command("fleet_run", "reconcile", "--org", "globex", "--parallel", "3")
    run = FleetRun.objects.get()
    assert (run.operation, run.parallel, run.selection) == ("reconcile", 3, "orgs: globex")
    assert _items(run) == [("globex", "running")]
    assert f"fleet run {run.pk}: reconcile over 1 job" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no such organisation: nope"):
        call_command("fleet_run", "validate", "--org", "nope")
    assert FleetRun.objects.count() == 1


def test_it_runs_only_the_organisations_needing_attention(acme, globex, capsys):
    JobRun.objects.create(
        kind="validate", schema_name="globex", status="succeeded", result={"ok": False}
    )
    call_command("fleet_run", "validate", "--only", "needs-attention", "--parallel", "2")
    run = FleetRun.objects.get()
    assert run.selection == "needs attention" and _items(run) == [("globex", "running")]


def test_the_tick_moves_every_open_run_on(acme, globex):
    from dashboard.fleet_runs import fleet_tick

    run = fleet_run_start(operation="validate", orgs=[acme, globex], parallel=1)
    first = _job_of(run, "acme")
    JobRun.objects.filter(pk=first.pk).update(status="interrupted")
    assert fleet_tick() == [run.pk]
    again = _job_of(run, "acme")
    assert again.pk != first.pk and again.status == "queued"
    assert _items(run) == [("acme", "running"), ("globex", "queued")]


@pytest.fixture
def fleet_cleanup(committed):
    yield committed
    FleetRun.objects.all().delete()
    Schedule.objects.filter(name=FLEET_TICK).delete()
    Task.objects.all().delete()
    OrmQ.objects.all().delete()
    WorkerHeartbeat.objects.all().delete()


def test_it_resumes_after_the_worker_is_sigkilled_with_each_org_done_exactly_once(
    fleet_cleanup, tmp_path
):
    from tenants.models import Organization

    orgs = list(Organization.objects.filter(slug__in=["acme", "globex"]))
    log = tmp_path / "qcluster.log"
    first = _qcluster(log, JOB_TEST_DELAY_SECONDS="120")  # acme's job is surely mid-way
    second = None
    try:
        run = fleet_run_start(operation="validate", orgs=orgs, parallel=1, requested_by="t")
        acme_job = _job_of(run, "acme")
        wait_until(
            lambda: JobRun.objects.get(pk=acme_job.pk).status == "running", 60, "acme runs", log
        )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        time.sleep(1)
        assert _items(run) == [("acme", "running"), ("globex", "queued")]

        # The safety-net schedule is due when the new cluster's scheduler looks (it would be
        # within a minute anyway).
        Schedule.objects.filter(name=FLEET_TICK).update(next_run=timezone.now())
        second = _qcluster(log)
        wait_until(
            lambda: FleetRun.objects.get(pk=run.pk).status == "finished",
            120,
            "the fleet run finishes after the restart",
            log,
        )
        assert _items(run) == [("acme", "done"), ("globex", "done")]
        assert JobRun.objects.get(pk=acme_job.pk).status == "interrupted"
        for schema in ("acme", "globex"):
            runs = JobRun.objects.filter(kind="validate", schema_name=schema)
            assert runs.filter(status="succeeded").count() == 1, list(runs.values())
        assert FleetRunItem.objects.get(fleet_run=run, organization__slug="acme").attempts == 2
        assert FleetRunItem.objects.get(fleet_run=run, organization__slug="globex").attempts == 1
    finally:
        for proc in (first, second):
            if proc is not None:
                _stop(proc)
