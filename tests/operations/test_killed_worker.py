"""Killed processes, for real: a `manage.py qcluster` SIGKILLed in the middle of a backfill, a
second start of the same job at the same moment, and `make run`'s supervisor (scripts/run_dev.py)
losing its worker. Data is committed (`committed`), so the worker processes see it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.test import Client
from django_q.models import OrmQ, Task
from django_tenants.utils import schema_context

from inventory.services.posting import ledger_entries_create
from operations.dispatch import job_start
from operations.models import JobRun, WorkerHeartbeat
from tests.factories import PASSWORD, make_user
from tests.inventory.helpers import balance_mismatches, make_catalog
from tests.server_processes import stop_group

ROOT = Path(__file__).resolve().parents[2]
HX = {"HTTP_HX_REQUEST": "true"}


def _database_url() -> str:
    s = connection.settings_dict
    user, password = quote(s["USER"] or ""), quote(s["PASSWORD"] or "")
    socket_dir = (s.get("OPTIONS") or {}).get("host")
    if socket_dir and not s["HOST"]:
        return f"postgresql://{user}:{password}@/{s['NAME']}?host={socket_dir}"
    return f"postgresql://{user}:{password}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}"


def _env(**extra: str) -> dict:
    return {**os.environ, "DATABASE_URL": _database_url(), "DEBUG": "true", **extra}


def _start(cmd: list[str], log: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=_env(**env),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _qcluster(log: Path, **env: str) -> subprocess.Popen:
    return _start([sys.executable, "manage.py", "qcluster"], log, Q_WORKERS="1", **env)


def _stop(proc: subprocess.Popen) -> None:
    stop_group(proc)


def wait_until(predicate, seconds: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"not within {seconds} s: {what}\n{tail}")


def _job(job_id: int) -> JobRun:
    return JobRun.objects.get(pk=job_id)


@pytest.fixture
def queue_cleanup(committed):
    yield committed
    Task.objects.all().delete()
    OrmQ.objects.all().delete()
    WorkerHeartbeat.objects.all().delete()


@pytest.fixture
def admin_client(queue_cleanup):
    user = make_user("killed-worker-admin", superuser=True)
    client = Client(HTTP_HOST="localhost")
    assert client.login(username=user.username, password=PASSWORD)
    yield client
    get_user_model().objects.filter(pk=user.pk).delete()


def _acme_ledger() -> None:
    with schema_context("acme"):
        items, locations, _ = make_catalog(items=3, locations=2, lots_per_item=0, prefix="KW")
        ledger_entries_create(
            entries=[
                {"item": i.sku, "location": loc.code, "qty": "4.5", "kind": "receipt"}
                for i in items
                for loc in locations
            ]
        )
        with connection.cursor() as cur:  # balances the backfill has to put right
            cur.execute("UPDATE inventory_balances SET qty_canonical = qty_canonical + 1")


def test_it_marks_a_sigkilled_workers_backfill_interrupted_and_restarts_it(admin_client, tmp_path):
    _acme_ledger()
    log = tmp_path / "qcluster.log"
    # The first worker's backfill waits 120 s before working, so it is surely mid-job when killed.
    first = _qcluster(log, JOB_TEST_DELAY_SECONDS="120")
    second = None
    try:
        job = job_start(kind="backfill", schema_name="acme", requested_by="admin")
        running = wait_until(
            lambda: (j := _job(job.id)).status == "running" and j, 60, "the job runs", log
        )
        assert running.worker.startswith(socket.gethostname()) and running.heartbeat_at
        assert OrmQ.objects.count() == 1  # taken by the worker, not acknowledged

        os.killpg(first.pid, signal.SIGKILL)  # the whole cluster: sentinel and worker too
        first.wait(timeout=10)
        time.sleep(1)
        assert _job(job.id).status == "running"  # nobody has looked yet

        second = _qcluster(log)
        interrupted = wait_until(
            lambda: (j := _job(job.id)).status == "interrupted" and j,
            45,
            "the new worker marks the run interrupted",
            log,
        )
        assert f"pid {running.worker.split()[-1]}" in interrupted.error
        assert interrupted.finished_at and interrupted.started_at == running.started_at
        # Its stale queue entry is gone: it will not run the job again in an hour.
        wait_until(lambda: OrmQ.objects.count() == 0, 10, "the queue entry dropped", log)
        assert balance_mismatches("acme") != []  # the killed backfill never got to work

        status = admin_client.get(f"/jobs/{job.id}/", **HX)
        html = status.content.decode()
        assert status.status_code == 200 and status["HX-Trigger"] == "job-finished"
        assert "hx-get" not in html and 'data-status="interrupted"' in html
        action = re.search(r'hx-post="([^"]+)"', html).group(1)
        assert action == "/orgs/acme/runbook/jobs/backfill/" and "Restart backfill" in html

        restarted = admin_client.post(action, **HX)
        assert restarted.status_code == 200
        new = JobRun.objects.exclude(pk=job.id).get()
        assert new.kind == "backfill" and new.schema_name == "acme"
        done = wait_until(
            lambda: (j := _job(new.id)).status in JobRun.TERMINAL and j, 60, "the restart", log
        )
        assert done.status == "succeeded", done.error
        assert balance_mismatches("acme") == []
        assert _job(job.id).status == "interrupted"  # the old run was not run again
    finally:
        for proc in (first, second):
            if proc is not None:
                _stop(proc)


def test_it_marks_a_run_interrupted_when_only_its_worker_process_is_killed(queue_cleanup, tmp_path):
    """The OOM killer's way: the worker child dies, the cluster lives on and replaces it."""
    log = tmp_path / "qcluster.log"
    cluster = _qcluster(log, JOB_TEST_DELAY_SECONDS="120")
    try:
        job = job_start(kind="validate", schema_name="acme", requested_by="admin")
        running = wait_until(
            lambda: (j := _job(job.id)).status == "running" and j, 60, "the job runs", log
        )
        worker_pid = int(running.worker.split()[-1])
        assert worker_pid != cluster.pid
        os.kill(worker_pid, signal.SIGKILL)
        interrupted = wait_until(
            lambda: (j := _job(job.id)).status == "interrupted" and j,
            45,
            "the replacement worker marks the run interrupted",
            log,
        )
        assert f"pid {worker_pid}" in interrupted.error
        wait_until(lambda: OrmQ.objects.count() == 0, 10, "the queue entry dropped", log)
        assert cluster.poll() is None
    finally:
        _stop(cluster)


def test_it_queues_one_job_when_two_starts_come_at_once(queue_cleanup):
    barrier = threading.Barrier(2)
    results, errors = [], []

    def start():
        try:
            barrier.wait(timeout=10)
            results.append(job_start(kind="validate", schema_name="acme", requested_by="t"))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len({j.id for j in results}) == 1 and JobRun.objects.count() == 1
    assert sorted(bool(getattr(j, "refused", False)) for j in results) == [False, True]
    assert OrmQ.objects.count() == 1


def test_the_heartbeat_beats_while_a_job_works(queue_cleanup, settings):
    from operations.jobs import job_run_create, job_run_execute

    settings.JOB_HEARTBEAT_SECONDS = 0.1
    job = job_run_create(kind="validate", schema_name="acme")
    seen = []

    def work(progress):
        seen.append(JobRun.objects.get(pk=job.pk).heartbeat_at)
        time.sleep(0.6)
        seen.append(JobRun.objects.get(pk=job.pk).heartbeat_at)
        return {}

    run = job_run_execute(job.id, work)
    assert run.status == "succeeded" and run.worker.endswith(f"pid {os.getpid()}")
    assert seen[1] > seen[0]


def test_a_job_that_closes_its_connection_is_not_taken_for_dead(queue_cleanup):
    """django-tenants closes the connection after migrate_schemas: the run keeps its lock."""
    from operations.jobs import job_run_create, job_run_execute, job_runs_reap

    job = job_run_create(kind="migrate", schema_name="acme")
    seen = {}

    def work(progress):
        connection.close()
        seen["reaped"] = job_runs_reap()
        return {}

    run = job_run_execute(job.id, work)
    assert seen["reaped"] == [] and run.status == "succeeded"


# --- make run ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, IndexError, ValueError):
            continue
    return {k: v.decode(errors="replace") for k, v in found.items()}


def _qcluster_child(pid: int) -> int | None:
    return next((c for c, cmd in _children(pid).items() if "qcluster" in cmd), None)


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
    except urllib.error.HTTPError:
        return True  # 503 while the worker is away is still an answer
    except OSError:
        return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_it_restarts_a_killed_worker_under_make_run_and_keeps_serving(queue_cleanup, tmp_path):
    port = _free_port()
    log = tmp_path / "run_dev.log"
    run = _start([sys.executable, "scripts/run_dev.py"], log, PORT=str(port))
    seen: set[int] = set()
    try:
        wait_until(lambda: _answers(port), 60, "the web server answers", log)
        first = wait_until(lambda: _qcluster_child(run.pid), 30, "a worker runs", log)
        seen |= set(_children(run.pid))
        os.killpg(first, signal.SIGKILL)
        second = wait_until(
            lambda: (c := _qcluster_child(run.pid)) and c != first and c,
            30,
            "a new worker",
            log,
        )
        seen |= set(_children(run.pid))
        assert run.poll() is None and _answers(port)
        assert f"worker (pid {first}) exited with -9" in log.read_text()

        run.send_signal(signal.SIGINT)  # Ctrl-C: both stop
        assert run.wait(timeout=30) == 0
        wait_until(lambda: not _alive(second), 10, "the worker stopped", log)
        assert not _answers(port)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        for pid in seen:  # each child leads its own process group
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
