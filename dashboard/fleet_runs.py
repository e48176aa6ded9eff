"""Fleet runs: start one operation over many organisations, advance it, pause, cancel, retry.

How it survives a killed worker (issue 11.1): the per-organisation work is an ordinary JobRun
(operations/jobs.py), which records its own outcome and is reaped `interrupted` when its worker
dies. An item only points at its current JobRun; `fleet_run_advance` reads those runs (the
truth) and moves items on: succeeded -> done, failed -> failed, interrupted -> queued again (a
new JobRun; migrate/backfill/validate/reconcile are idempotent). So a dead worker only delays a
run: nothing is marked done that did not succeed, and nothing is started twice while its run is
queued or running. Starting an item (its JobRun, its queue entry, the item's new state) is one
transaction with the fleet run's row locked, so two advances never start the same item.

Who advances: each per-org task when its job ends (`fleet_item_task`), and the minute schedule
FLEET_TICK (a safety net: after a kill -9 nobody else would)."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task
from django_tenants.utils import schema_context

from dashboard.models import FleetRun, FleetRunItem
from operations.jobs import JobAlreadyRunning, job_run_create, job_runs_reap
from operations.models import JobRun
from operations.registry import job_kind, job_run_registered
from tenants.models import Organization

log = logging.getLogger(__name__)

ITEM_TASK = "dashboard.fleet_runs.fleet_item_task"
TICK_TASK = "dashboard.fleet_runs.fleet_tick"
FLEET_TICK = "fleet tick"
MAX_PARALLEL = 16
WHOLE_DATABASE = {FleetRun.Operation.BACKUP}  # one job for the fleet, not one per organisation


class FleetRunError(ValueError):
    pass


def fleet_run_start(
    *,
    operation: str,
    orgs: list[Organization],
    parallel: int = 2,
    selection: str = "all",
    requested_by: str = "",
) -> FleetRun:
    """Record the run and its items in slug order, then start the first `parallel` of them."""
    if operation not in FleetRun.Operation.values:
        raise FleetRunError(f"unknown operation {operation!r}")
    if not 1 <= parallel <= MAX_PARALLEL:
        raise FleetRunError(f"parallel must be 1 to {MAX_PARALLEL}")
    job_kind(operation)  # registered
    orgs = sorted(orgs, key=lambda o: o.slug)
    if operation not in WHOLE_DATABASE and not orgs:
        raise FleetRunError("no organisations selected")
    with schema_context("public"), transaction.atomic():
        run = FleetRun.objects.create(
            operation=operation,
            parallel=parallel,
            selection=selection[:200],
            requested_by=requested_by[:150],
        )
        targets = [None] if operation in WHOLE_DATABASE else orgs
        FleetRunItem.objects.bulk_create(
            FleetRunItem(fleet_run=run, organization=org, position=i)
            for i, org in enumerate(targets)
        )
    fleet_tick_schedule_ensure()
    fleet_run_advance(run.pk)
    return run


def fleet_tick_schedule_ensure() -> None:
    Schedule.objects.get_or_create(
        name=FLEET_TICK,
        defaults={"func": TICK_TASK, "schedule_type": Schedule.MINUTES, "minutes": 1},
    )


def _outcome(item: FleetRunItem, job: JobRun) -> None:
    if job.status == JobRun.Status.SUCCEEDED:
        ok = (job.result or {}).get("ok", True)
        item.state = FleetRunItem.State.DONE if ok else FleetRunItem.State.FAILED
        item.message = job.message
        item.finished_at = job.finished_at
    elif job.status == JobRun.Status.FAILED:
        item.state = FleetRunItem.State.FAILED
        item.message = (
            (job.error or job.message).splitlines()[-1][:500]
            if (job.error or job.message)
            else "failed"
        )
        item.finished_at = job.finished_at
    elif job.status == JobRun.Status.INTERRUPTED:
        # Its worker died: start it again with a new JobRun (the job is idempotent).
        item.state = FleetRunItem.State.QUEUED
        item.message = f"job {job.pk} interrupted; queued again"
        item.job_run = None


def _start_item(run: FleetRun, item: FleetRunItem) -> None:
    schema = item.organization.schema_name if item.organization_id else ""
    try:
        job = job_run_create(
            kind=run.operation,
            schema_name=schema,
            requested_by=f"fleet run {run.pk}",
            params=job_kind(run.operation).params({}),
        )
    except JobAlreadyRunning as err:
        # Another door runs this kind for this schema now: follow that run instead.
        item.job_run = err.job
    else:
        # The queue entry is written on this connection, in this transaction: it exists exactly
        # when the JobRun and the item's new state do.
        task_id = async_task(
            ITEM_TASK,
            job_id=job.pk,
            fleet_run_id=run.pk,
            task_name=f"fleet {run.pk} {run.operation} {schema or 'platform'}",
        )
        JobRun.objects.filter(pk=job.pk).update(task_id=task_id or "")
        item.job_run = job
    item.state = FleetRunItem.State.RUNNING
    item.attempts += 1
    item.message = f"job {item.job_run_id}"


def fleet_run_advance(run_id: int) -> FleetRun:
    """Read the items' JobRuns, move items on, start queued items up to `parallel`."""
    with schema_context("public"):
        running_jobs = list(
            JobRun.objects.filter(
                fleetrunitem__fleet_run_id=run_id,
                fleetrunitem__state=FleetRunItem.State.RUNNING,
                status__in=JobRun.ACTIVE,
            )
        )
        job_runs_reap(running_jobs)  # a dead worker's runs turn interrupted first
        with transaction.atomic():
            run = FleetRun.objects.select_for_update().get(pk=run_id)
            running = list(
                FleetRunItem.objects.select_related("job_run").filter(
                    fleet_run=run, state=FleetRunItem.State.RUNNING
                )
            )
            slots = run.parallel
            for item in running:
                if item.job_run is None:  # its JobRun was deleted: start it again
                    item.state = FleetRunItem.State.QUEUED
                else:
                    _outcome(item, item.job_run)
                if item.state == FleetRunItem.State.RUNNING:
                    slots -= 1
                item.save(update_fields=["state", "message", "finished_at", "job_run"])
            if run.status == FleetRun.Status.ACTIVE and slots > 0:
                for item in (
                    FleetRunItem.objects.select_related("organization")
                    .filter(fleet_run=run, state=FleetRunItem.State.QUEUED)
                    .order_by("position")[:slots]
                ):
                    _start_item(run, item)
                    item.save(update_fields=["state", "job_run", "attempts", "message"])
            if run.status == FleetRun.Status.CANCELLED:
                FleetRunItem.objects.filter(fleet_run=run, state=FleetRunItem.State.QUEUED).update(
                    state=FleetRunItem.State.SKIPPED, message="cancelled"
                )
            open_items = FleetRunItem.objects.filter(
                fleet_run=run, state__in=[FleetRunItem.State.QUEUED, FleetRunItem.State.RUNNING]
            ).exists()
            if not open_items and run.status == FleetRun.Status.ACTIVE:
                run.status = FleetRun.Status.FINISHED
            if not open_items and run.finished_at is None and run.status not in FleetRun.OPEN:
                run.finished_at = timezone.now()
            run.save(update_fields=["status", "finished_at"])
        return run


def fleet_run_pause(run_id: int) -> FleetRun:
    """No new organisation starts; those running finish."""
    return _set_status(run_id, FleetRun.Status.PAUSED, from_=[FleetRun.Status.ACTIVE])


def fleet_run_resume(run_id: int) -> FleetRun:
    _set_status(run_id, FleetRun.Status.ACTIVE, from_=[FleetRun.Status.PAUSED])
    return fleet_run_advance(run_id)


def fleet_run_cancel(run_id: int) -> FleetRun:
    """Queued organisations are skipped; running ones finish and are recorded."""
    _set_status(run_id, FleetRun.Status.CANCELLED, from_=list(FleetRun.OPEN))
    return fleet_run_advance(run_id)


def fleet_run_retry(run_id: int, item_ids: list[int] | None = None) -> FleetRun:
    """Queue failed items again (all, or those given); a finished run becomes active again."""
    with schema_context("public"), transaction.atomic():
        run = FleetRun.objects.select_for_update().get(pk=run_id)
        if run.status == FleetRun.Status.CANCELLED:
            raise FleetRunError("a cancelled run is not retried; start a new one")
        failed = FleetRunItem.objects.filter(fleet_run=run, state=FleetRunItem.State.FAILED)
        if item_ids is not None:
            failed = failed.filter(pk__in=item_ids)
        if failed.update(
            state=FleetRunItem.State.QUEUED, job_run=None, message="retry", finished_at=None
        ):
            if run.status == FleetRun.Status.FINISHED:
                run.status, run.finished_at = FleetRun.Status.ACTIVE, None
                run.save(update_fields=["status", "finished_at"])
    return fleet_run_advance(run_id)


def _set_status(run_id: int, status: str, *, from_: list[str]) -> FleetRun:
    with schema_context("public"), transaction.atomic():
        run = FleetRun.objects.select_for_update().get(pk=run_id)
        if run.status not in from_:
            raise FleetRunError(f"fleet run {run.pk} is {run.status}")
        run.status = status
        run.save(update_fields=["status"])
        return run


# --- progress --------------------------------------------------------------------------------


def fleet_run_progress(run: FleetRun, counts: dict | None = None) -> dict:
    """Counts per state, rate (organisations a minute) and time left; one query, or none when
    the counts come annotated (`fleet_runs_recent`)."""
    if counts is None:
        counts = dict(
            FleetRunItem.objects.filter(fleet_run=run)
            .values("state")
            .annotate(n=Count("id"))
            .values_list("state", "n")
        )
    counts = {s: counts.get(s, 0) for s in FleetRunItem.State.values}
    total = sum(counts.values())
    finished = counts["done"] + counts["failed"]
    end = run.finished_at or timezone.now()
    elapsed = max((end - run.created_at).total_seconds(), 0.001)
    rate = finished / elapsed  # per second
    waiting = counts["queued"] + counts["running"]
    left = waiting / rate if rate and run.status in FleetRun.OPEN else None
    return {
        **counts,
        "total": total,
        "finished": finished,
        "percent": round(100 * (finished + counts["skipped"]) / total) if total else 100,
        "rate_per_min": round(rate * 60, 1),
        "seconds_left": round(left) if left is not None else None,
        "elapsed": round(elapsed),
    }


# --- tasks -----------------------------------------------------------------------------------


def fleet_runs_recent(limit: int = 3) -> list[tuple[FleetRun, dict]]:
    """The newest runs with their progress, in one query (the fleet page's panel)."""
    states = FleetRunItem.State.values
    runs = FleetRun.objects.order_by("-created_at").annotate(
        **{f"n_{s}": Count("items", filter=Q(items__state=s)) for s in states}
    )[:limit]
    return [
        (run, fleet_run_progress(run, {s: getattr(run, f"n_{s}") for s in states})) for run in runs
    ]


def fleet_item_task(*, job_id: int, fleet_run_id: int) -> dict:
    """One organisation's job, then the run moves on (starts the next one)."""
    try:
        result = job_run_registered(job_id).result
    finally:
        fleet_run_advance(fleet_run_id)
    return result


def fleet_tick() -> list[int]:
    """The minute schedule: advance every open run (picks up after a killed worker)."""
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        ids = list(FleetRun.objects.filter(status__in=FleetRun.OPEN).values_list("pk", flat=True))
        ids += list(
            FleetRun.objects.filter(status=FleetRun.Status.CANCELLED, finished_at=None).values_list(
                "pk", flat=True
            )
        )
    for run_id in ids:
        fleet_run_advance(run_id)
    return ids


def fleet_run_wait(run_id: int, *, timeout: float, poll: float = 1.0) -> FleetRun:
    """For the command: advance and wait until the run is no longer active (or the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        run = fleet_run_advance(run_id)
        if run.status not in FleetRun.OPEN and run.finished_at is not None:
            return run
        if time.monotonic() > deadline:
            return run
        time.sleep(poll)
