"""The CSV export against real processes (issue 18.3), with 200,000 committed balance rows in
acme:

- gunicorn (production settings) streams the whole file chunked, without a Content-Length;
- a gunicorn worker SIGKILLed in the middle of the stream leaves the client an error
  (http.client's IncompleteRead: the body ends without its last chunk), never a file that
  passes for complete;
- a `manage.py qcluster` worker SIGKILLed in the middle of an export job leaves an interrupted
  run, a `.part` file nobody serves (410) and that the sweep removes, and no file under a final
  name."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django_q.models import OrmQ, Task

from operations.dispatch import job_start
from operations.models import JobRun, WorkerHeartbeat
from tests.factories import PASSWORD, make_user
from tests.inventory.export_helpers import many_balances
from tests.inventory.helpers import wipe_tenant
from tests.server_processes import (
    PRODUCTION,
    PY,
    ROOT,
    Server,
    collect_static,
    disconnect_others,
    free_port,
    request,
    server_env,
)

ROWS = 200_000
OWNER = "export-live-owner"


@pytest.fixture(scope="module")
def data(django_db_setup, django_db_blocker):
    """Committed: 200,000 balance rows in acme and an owner of acme. Emptied afterwards."""
    from tenants.models import Membership, Organization

    with django_db_blocker.unblock():
        assert connection.settings_dict["NAME"].startswith("test_")
        acme = Organization.objects.get(slug="acme")
        assert many_balances("acme", items=2000, locations=100) == ROWS
        user = make_user(OWNER, org=acme, role=Membership.Role.OWNER)
        try:
            yield {"org": acme, "user": user}
        finally:
            disconnect_others()
            connection.set_schema_to_public()
            with connection.cursor() as cursor:
                wipe_tenant("acme", cursor)
                cursor.execute("TRUNCATE operations_job_runs, operations_worker_heartbeats")
            Task.objects.all().delete()
            OrmQ.objects.all().delete()
            get_user_model().objects.filter(username=OWNER).delete()


@pytest.fixture
def db_open(django_db_blocker):
    with django_db_blocker.unblock():
        yield


# --- gunicorn ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def web(data, tmp_path_factory):
    """gunicorn with production settings and one worker; the threshold above ROWS so the
    export streams."""
    port = free_port()
    web_exports = tmp_path_factory.mktemp("web-exports")
    static_root = tmp_path_factory.mktemp("web-static")
    collect_static(static_root)  # its own, like the other live servers: no make setup assumed
    env = server_env(
        **PRODUCTION,
        STATIC_ROOT=str(static_root),
        PORT=str(port),
        WEB_CONCURRENCY="1",
        EXPORT_STREAM_MAX_ROWS=str(10 * ROWS),
        EXPORT_DIR=str(web_exports),
        GUNICORN_ACCESS_LOG="off",
    )
    server = Server([PY, "-m", "gunicorn", "-c", "config/gunicorn.conf.py"], env, port)
    try:
        server.wait_ready()
        server.exports = web_exports
        yield server
    finally:
        server.stop(signal.SIGTERM)


@pytest.fixture(scope="module")
def cookie(web) -> str:
    """A signed-in session of the owner on the server (its own login form)."""
    from http.cookies import SimpleCookie

    headers = {"X-Forwarded-Proto": "https"}
    status, got, page = request(web.port, "GET", "/login/", headers=headers)
    assert status == 200
    cookies = _cookies(got, SimpleCookie)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
    body = f"username={OWNER}&password={PASSWORD}&csrfmiddlewaretoken={token}"
    status, got, _ = request(
        web.port,
        "POST",
        "/login/",
        body=body,
        headers={
            **headers,
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": "https://localhost",
        },
    )
    assert status == 302, status
    cookies |= _cookies(got, SimpleCookie)
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def _cookies(headers, SimpleCookie) -> dict:
    found = {}
    for name, value in headers:
        if name.lower() == "set-cookie":
            found |= {k: m.value for k, m in SimpleCookie(value).items()}
    return found


def _csv_request(web, cookie) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=60)
    conn.request(
        "GET",
        "/orgs/acme/balances.csv",
        headers={"Host": "localhost", "X-Forwarded-Proto": "https", "Cookie": cookie},
    )
    return conn, conn.getresponse()


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def test_gunicorn_streams_the_whole_export_chunked(web, cookie, capsys):
    started = time.perf_counter()
    conn, response = _csv_request(web, cookie)
    try:
        assert response.status == 200
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert response.getheader("Content-Length") is None
        body = response.read()
    finally:
        conn.close()
    seconds = time.perf_counter() - started
    assert body.startswith(b"sku,item,unit,location,lot,qty,updated_at\r\n")
    assert body.count(b"\r\n") == ROWS + 1
    with capsys.disabled():
        print(f"\nthrough gunicorn: {ROWS} rows in {seconds:.2f} s = {ROWS / seconds:,.0f} rows/s")


def test_a_gunicorn_worker_killed_mid_stream_is_an_error_for_the_client(web, cookie):
    [worker] = _children(web.proc.pid)
    conn, response = _csv_request(web, cookie)
    try:
        assert response.status == 200 and response.getheader("Transfer-Encoding") == "chunked"
        first = response.read(65536)
        assert first.startswith(b"sku,item,")
        # The worker is blocked writing (about 18 MB, more than the socket buffers hold).
        time.sleep(0.5)
        os.kill(worker, signal.SIGKILL)
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
        got = len(first) + len(cut.value.partial)
        assert got < 18_000_000, got  # part of the file, and the client knows it
    finally:
        conn.close()
    # The master replaces the worker; the next export is whole.
    deadline = time.monotonic() + 60
    while not [p for p in _children(web.proc.pid) if p != worker]:
        assert time.monotonic() < deadline, web.text
        time.sleep(0.2)
    web.wait_ready()
    conn, response = _csv_request(web, cookie)
    try:
        assert response.read().count(b"\r\n") == ROWS + 1
    finally:
        conn.close()


def test_a_client_that_goes_away_mid_stream_leaves_the_worker_sound(web, cookie):
    """The stream's COPY is cancelled when the client leaves; the worker's pooled connection
    serves the next export whole."""
    [worker] = _children(web.proc.pid)
    for _attempt in range(2):
        conn, response = _csv_request(web, cookie)
        assert response.read(65536).startswith(b"sku,item,")
        response.close()  # the socket goes with it (gunicorn closes after each response)
        conn.close()
        time.sleep(0.5)
    conn, response = _csv_request(web, cookie)
    try:
        assert response.status == 200 and response.read().count(b"\r\n") == ROWS + 1
    finally:
        conn.close()
    assert _children(web.proc.pid) == [worker]  # the same worker, not a replacement
    status, _, body = request(web.port, "GET", "/health")
    assert status in (200, 503) and b"Traceback" not in body


def test_gunicorn_serves_a_finished_export_whole_with_its_length(web, cookie, db_open, settings):
    from operations.registry import job_run_registered

    settings.EXPORT_DIR = web.exports
    job = job_start(kind="export", schema_name="acme", requested_by="test", query="")
    run = job_run_registered(job.id)  # the worker's task, run here
    assert run.status == "succeeded" and run.result["rows"] == ROWS
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=60)
    try:
        conn.request(
            "GET",
            f"/orgs/acme/exports/{job.id}/download/",
            headers={"Host": "localhost", "X-Forwarded-Proto": "https", "Cookie": cookie},
        )
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") == str(run.result["bytes"])
        assert response.getheader("Transfer-Encoding") is None
        body = response.read()
    finally:
        conn.close()
    assert len(body) == run.result["bytes"] and body.count(b"\r\n") == ROWS + 1
    _, streamed = _csv_request(web, cookie)
    assert streamed.read() == body  # the stream and the file: one export
    JobRun.objects.filter(pk=job.id).delete()


# --- qcluster ---------------------------------------------------------------------------------


def _qcluster(log: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=server_env(DEBUG="true", **env),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait(predicate, seconds: float, what: str, log: Path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(
        f"not within {seconds} s: {what}\n{log.read_text(errors='replace')[-3000:]}"
    )


def test_an_export_job_killed_midway_leaves_no_file_to_serve(data, db_open, tmp_path, settings):
    exports = tmp_path / "exports"
    settings.EXPORT_DIR = exports
    log = tmp_path / "qcluster.log"
    # The job sleeps 3 s once running: time to take its JobRun row's lock, so that its first
    # progress report (after the first block is in the file) waits, mid-export, to be killed.
    cluster = _qcluster(log, JOB_TEST_DELAY_SECONDS="3", EXPORT_DIR=str(exports), Q_WORKERS="1")
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    blocker = psycopg.connect(**params)
    try:
        job = job_start(kind="export", schema_name="acme", requested_by="test", query="")
        running = _wait(
            lambda: (j := JobRun.objects.get(pk=job.id)).status == "running" and j,
            60,
            "the export runs",
            log,
        )
        blocker.execute(
            "SELECT 1 FROM public.operations_job_runs WHERE id = %s FOR UPDATE", [job.id]
        )
        part = _wait(
            lambda: (
                next(iter((exports / "acme").glob(".export-*.csv.part")), None)
                if (exports / "acme").is_dir()
                else None
            ),
            30,
            "the .part file",
            log,
        )
        _wait(lambda: part.stat().st_size > 0, 30, "rows in the .part file", log)
        _wait(lambda: _waiting_on_lock(job.id), 30, "the job waiting on its progress", log)
        os.kill(int(running.worker.split()[-1]), signal.SIGKILL)
        blocker.rollback()

        owner = Client(HTTP_HOST="localhost")
        assert owner.login(username=OWNER, password=PASSWORD)
        interrupted = _wait(
            lambda: (
                'data-status="interrupted"'
                in (page := owner.get(f"/orgs/acme/exports/{job.id}/").content.decode())
                and page
            ),
            60,
            "the run marked interrupted",
            log,
        )
        assert "/download/" not in interrupted and "No file was kept" in interrupted
        download = owner.get(f"/orgs/acme/exports/{job.id}/download/")
        assert download.status_code == 410
        assert [p.name for p in (exports / "acme").iterdir()] == [part.name]  # no final file
        assert 0 < part.stat().st_size < 18_000_000

        from inventory.jobs import export_files_sweep

        assert export_files_sweep() == []  # a .part is kept while its writer may be alive
        stale = time.time() - 2 * settings.EXPORT_PART_STALE_SECONDS
        os.utime(part, (stale, stale))
        assert export_files_sweep() == [str(part)]
        assert list((exports / "acme").iterdir()) == []
    finally:
        blocker.close()
        os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait(timeout=30)
        WorkerHeartbeat.objects.all().delete()


def _waiting_on_lock(job_id: int) -> bool:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            ["UPDATE %operations_job_runs%"],
        )
        return cur.fetchone()[0] > 0
