"""Job runs: a record per long job that pages poll for progress and outcome.

`job_run_execute` is the one wrapper every run goes through (operations/registry.py calls it with
the function an app registered for the run's kind): it marks the run started, passes a progress
callback to the job, and records success or the error. Progress writes go through
their own autocommit statements, so a page sees them while the job's own transactions run.

Surviving killed processes:

- While a run executes, its process holds a session-level PostgreSQL advisory lock named after the
  run's kind and schema, on a database session of the run's own (`_RunGuard`). The server drops
  the lock when that session ends, and a killed process's session ends with it (SIGKILL included:
  the kernel closes the socket). So a run that says "running" while nobody holds its lock lost
  its worker: `job_runs_reap` marks it `interrupted`. It does the same when the run's heartbeat
  (the guard touching `heartbeat_at` every JOB_HEARTBEAT_SECONDS, and every progress call) is
  older than JOB_STALE_SECONDS: a process still connected but not working, or one the server has
  not noticed is gone.
- The reaper runs whenever a worker process starts (a restarted cluster, or django-q2 replacing a
  dead worker), every minute with the worker heartbeat, and when a page polls the run.
- A partial unique index allows one queued or running run per kind and schema, whichever door
  (page, schedule, command) starts it: a second start gets `JobAlreadyRunning`. The lock keeps a
  restarted run from executing beside a run that was given up on but is in fact still alive.
- A run starts only from `queued` (one conditional UPDATE), so django-q2 handing a dead worker's
  task out again (after Q_CLUSTER["retry"]) does nothing; the reaper deletes that queue entry too.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import zlib
from collections.abc import Callable

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Now
from django.utils import timezone
from django_tenants.utils import schema_context

from operations.models import JobRun

log = logging.getLogger(__name__)

LOCK_NAMESPACE = 0x4A4F4253  # "JOBS": the first key of the two-key advisory locks of job runs
ACTIVE_CONSTRAINT = "jobrun_one_active_per_kind_schema"
# A queued run whose task never started it (no queue entry left) is given up after this long.
QUEUED_GRACE_SECONDS = 30


def heartbeat_seconds() -> float:
    return float(settings.JOB_HEARTBEAT_SECONDS)


def stale_seconds() -> float:
    return float(settings.JOB_STALE_SECONDS)


class JobAlreadyRunning(Exception):
    """A run of the same kind and schema is queued or running; `job` is that run."""

    def __init__(self, job: JobRun):
        self.job = job
        where = job.schema_name or "the platform"
        who = f", started by {job.requested_by}" if job.requested_by else ""
        super().__init__(
            f"a {job.kind} job for {where} is already {job.status} (job {job.id}{who}); "
            "not started again"
        )


def _lock_key(kind: str, schema_name: str) -> int:
    return zlib.crc32(f"{kind}:{schema_name}".encode()) & 0x7FFFFFFF


def _worker_name() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


def job_run_create(
    *, kind: str, schema_name: str = "", requested_by: str = "", params: dict | None = None
) -> JobRun:
    """Record a queued run. Raises JobAlreadyRunning when one of the same kind and schema is
    queued or running (after giving up on it if its worker is gone)."""
    with schema_context("public"):
        active = None
        for _attempt in range(3):
            try:
                with transaction.atomic():
                    return JobRun.objects.create(
                        kind=kind,
                        schema_name=schema_name,
                        requested_by=requested_by,
                        params=params or {},
                    )
            except IntegrityError as err:
                diag = getattr(err.__cause__, "diag", None)
                if getattr(diag, "constraint_name", "") != ACTIVE_CONSTRAINT:
                    raise
            active = JobRun.objects.filter(
                kind=kind, schema_name=schema_name, status__in=JobRun.ACTIVE
            ).first()
            if active is not None and not job_run_reap(active):
                raise JobAlreadyRunning(active)
        raise JobAlreadyRunning(active)


# --- executing ------------------------------------------------------------------------------------


def _update(job_id: int, **fields) -> int:
    # Written on the public table by name; safe whatever schema the job is working in.
    return JobRun.objects.filter(pk=job_id).update(**fields)


class _RunGuard(threading.Thread):
    """Holds the run's advisory lock on a database session of its own, and beats on it every
    JOB_HEARTBEAT_SECONDS (also through steps that report no progress, such as pg_dump).

    Its own session, not the job's: the job's may be closed in the middle of the job
    (django-tenants closes it after migrate_schemas), handed back to a pool, or inside a
    transaction. This one lives exactly as long as the run in this process, and dies with it."""

    def __init__(self, job: JobRun):
        super().__init__(name=f"job-{job.pk}-guard", daemon=True)
        self.job_id = job.pk
        self.key = _lock_key(job.kind, job.schema_name)
        self.done = threading.Event()
        self.conn = None
        table = JobRun._meta.db_table
        self.beat_sql = (
            f'UPDATE "{settings.PUBLIC_SCHEMA_NAME}"."{table}" SET heartbeat_at = now() '
            "WHERE id = %s AND status = 'running'"
        )

    def acquire(self) -> bool:
        import psycopg

        params = connection.get_connection_params()
        for django_only in ("cursor_factory", "context"):
            params.pop(django_only, None)
        self.conn = psycopg.connect(**params, autocommit=True)
        got = self.conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", [LOCK_NAMESPACE, self.key]
        ).fetchone()[0]
        if not got:
            self.release()
        return bool(got)

    def run(self) -> None:
        while not self.done.wait(heartbeat_seconds()):
            try:
                self.conn.execute(self.beat_sql, [self.job_id])
            except Exception:  # the session is gone, and the lock with it: the reaper will see
                log.warning("heartbeat of job %s failed", self.job_id, exc_info=True)

    def release(self) -> None:
        self.done.set()
        if self.is_alive():
            self.join(timeout=30)
        if self.conn is not None:
            try:
                self.conn.close()  # ends the session, which releases the lock
            except Exception:
                log.warning("closing the lock session of job %s failed", self.job_id)
            self.conn = None


def _test_delay() -> None:
    # Test hook: the killed-worker tests need a job that is still running when they kill it.
    delay = float(os.environ.get("JOB_TEST_DELAY_SECONDS") or 0)
    if delay > 0:
        time.sleep(delay)


def job_run_execute(job_id: int, work: Callable[[Callable[[int, int, str], None]], dict]) -> JobRun:
    """Run `work(progress)` for the queued run and record the outcome. Errors are recorded, then
    re-raised. A run that is no longer queued (finished, interrupted, or running elsewhere) is
    left alone and returned as it is."""
    job = JobRun.objects.get(pk=job_id)
    guard = _RunGuard(job)
    if not guard.acquire():
        # A live session holds this kind and schema: a run given up on that is still working,
        # or this very run handed out twice. Never run beside it.
        if job.status == JobRun.Status.QUEUED:
            _update(
                job_id,
                status=JobRun.Status.FAILED,
                finished_at=timezone.now(),
                message="not started",
                error=f"An earlier {job.kind} run for {job.schema_name or 'the platform'} is "
                "still executing (its database session holds the job lock); this run was not "
                "started. Wait for it to end, then restart.",
            )
        log.warning("job %s not run: its lock is held by another session", job_id)
        return JobRun.objects.get(pk=job_id)
    try:
        started = JobRun.objects.filter(pk=job_id, status=JobRun.Status.QUEUED).update(
            status=JobRun.Status.RUNNING,
            started_at=timezone.now(),
            heartbeat_at=Now(),
            worker=_worker_name(),
            error="",
            message="started",
        )
        if not started:
            job.refresh_from_db()
            if job.status == JobRun.Status.RUNNING:
                # We hold its lock, so whoever ran it is gone: this is its task handed out again.
                _interrupt(job, _reason_gone(job))
            log.warning("job %s is %s, not queued: not running it", job_id, job.status)
            return JobRun.objects.get(pk=job_id)
        # Inside an outer transaction (tests running tasks inline) the row is invisible to the
        # guard's session, so beating would update nothing.
        if not connection.in_atomic_block:
            guard.start()
        return _execute(job_id, work)
    finally:
        guard.release()


def _execute(job_id: int, work) -> JobRun:
    def progress(done: int, total: int, message: str = "") -> None:
        JobRun.objects.filter(pk=job_id, status=JobRun.Status.RUNNING).update(
            done=done, total=total, message=message[:500], heartbeat_at=Now()
        )

    try:
        _test_delay()
        result = work(progress) or {}
    except Exception as err:
        log.exception("job %s failed in schema %s", job_id, connection.schema_name)
        _finish(job_id, JobRun.Status.FAILED, "failed", _error_text(err))
        raise
    except BaseException as err:
        from django_q.exceptions import TimeoutException

        if isinstance(err, TimeoutException):  # django-q2's timeout (a SystemExit)
            _finish(job_id, JobRun.Status.FAILED, "timed out", "Stopped by the worker's timeout.")
        else:  # Ctrl-C on a command, a worker told to exit
            _finish(
                job_id,
                JobRun.Status.INTERRUPTED,
                "interrupted",
                f"Stopped ({type(err).__name__}) before it finished.",
            )
        raise
    # The outcome is written whatever the status says now: if the run was given up on while it
    # was in fact alive (a lapsed heartbeat), the truth replaces "interrupted".
    _update(
        job_id,
        status=JobRun.Status.SUCCEEDED,
        finished_at=timezone.now(),
        result=result,
        message=str(result.get("summary", "done"))[:500],
    )
    return JobRun.objects.get(pk=job_id)


def _error_text(err: BaseException) -> str:
    return "".join(traceback.format_exception_only(err)).strip()[:5000]


def _finish(job_id: int, status: str, message: str, error: str) -> None:
    _update(job_id, status=status, finished_at=timezone.now(), message=message, error=error)


# --- reaping --------------------------------------------------------------------------------------


def _held_keys(keys: list[int]) -> set[int]:
    """Which job locks some session of this database holds now."""
    if not keys:
        return set()
    with connection.cursor() as cur:
        cur.execute(
            "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = %s AND objsubid = 2 AND objid::bigint = ANY(%s) "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [LOCK_NAMESPACE, keys],
        )
        return {row[0] for row in cur.fetchall()}


def _fmt(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else "never"


def _reason_gone(job: JobRun) -> str:
    return (
        f"The worker running this job ({job.worker or 'unknown process'}) stopped before the "
        f"job finished (last heartbeat {_fmt(job.heartbeat_at)})."
    )


def _queued_task_ids() -> set[str] | None:
    """Task ids still in django-q2's ORM queue; None when another broker is in use."""
    if not settings.Q_CLUSTER.get("orm"):
        return None
    from django_q.models import OrmQ

    return {q.task_id() for q in OrmQ.objects.all()}


def _verdict(job: JobRun, held: set[int], queued: set[str] | None, now) -> str | None:
    """Why the run is dead, or None while it may still be alive."""
    if job.status == JobRun.Status.RUNNING:
        if _lock_key(job.kind, job.schema_name) not in held:
            return _reason_gone(job)
        last = job.heartbeat_at or job.started_at or job.created_at
        if (now - last).total_seconds() > stale_seconds():
            return (
                f"No heartbeat from its worker ({job.worker or 'unknown process'}) since "
                f"{_fmt(last)}, over {stale_seconds():.0f} s: given up as stopped (while it still holds "
                "its lock, a restart will not execute beside it)."
            )
        return None
    # Queued: judged only when we know its task (job_start records it); a run some other code
    # queued may wait in a busy queue for any length of time.
    age = (now - job.created_at).total_seconds()
    if job.task_id and queued is not None and age > QUEUED_GRACE_SECONDS:
        if job.task_id not in queued:
            return (
                "Its queued task is gone (its worker died, or the queue was cleared) before the "
                "job started."
            )
    return None


def _interrupt(job: JobRun, reason: str) -> bool:
    # Conditional on the status seen, so a run that just finished keeps its outcome.
    fields = {
        "status": JobRun.Status.INTERRUPTED,
        "finished_at": timezone.now(),
        "message": "interrupted",
        "error": reason[:5000],
    }
    changed = JobRun.objects.filter(pk=job.pk, status=job.status).update(**fields)
    if changed:
        for name, value in fields.items():  # the caller's copy says so too
            setattr(job, name, value)
        log.warning("job %s (%s %s) interrupted: %s", job.pk, job.kind, job.schema_name, reason)
    return bool(changed)


def _drop_queue_entries(task_ids: set[str]) -> None:
    """Delete the dead runs' queue entries, so django-q2 does not hand them out again."""
    if not task_ids or not settings.Q_CLUSTER.get("orm"):
        return
    from django_q.models import OrmQ

    stale = [q.pk for q in OrmQ.objects.all() if q.task_id() in task_ids]
    OrmQ.objects.filter(pk__in=stale).delete()


def job_runs_reap(jobs: list[JobRun] | None = None) -> list[int]:
    """Mark interrupted every queued or running run (or those given) whose worker is gone.
    Returns the ids marked."""
    with schema_context("public"):
        if jobs is None:
            jobs = list(JobRun.objects.filter(status__in=JobRun.ACTIVE))
        jobs = [j for j in jobs if j.status in JobRun.ACTIVE]
        if not jobs:
            return []
        running = [j for j in jobs if j.status == JobRun.Status.RUNNING]
        held = _held_keys(sorted({_lock_key(j.kind, j.schema_name) for j in running}))
        queued_ids = (
            _queued_task_ids() if any(j.status == JobRun.Status.QUEUED for j in jobs) else None
        )
        with connection.cursor() as cur:  # the clock heartbeats are written with
            cur.execute("SELECT clock_timestamp()")
            now = cur.fetchone()[0]
        reaped, task_ids = [], set()
        for job in jobs:
            reason = _verdict(job, held, queued_ids, now)
            if reason and _interrupt(job, reason):
                reaped.append(job.pk)
                if job.task_id:
                    task_ids.add(job.task_id)
        _drop_queue_entries(task_ids)
        return reaped


def job_run_reap(job: JobRun) -> bool:
    """`job_runs_reap` for one run (`job` is updated when it was marked)."""
    return job.pk in job_runs_reap([job])
