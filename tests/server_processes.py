"""Real server processes for tests: start `make run`'s script, gunicorn or `make serve`'s
supervisor on a free port against the test database, drive them with concurrent HTTP clients,
and stop them with their children. Data the servers must see is committed (`seeded` below)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def live_database_url() -> str:
    s = connection.settings_dict
    assert s["NAME"].startswith("test_"), "servers under test must use the test database"
    user, password = quote(s["USER"] or ""), quote(s["PASSWORD"] or "")
    socket_dir = (s.get("OPTIONS") or {}).get("host")
    if socket_dir and not s["HOST"]:
        return f"postgresql://{user}:{password}@/{s['NAME']}?host={socket_dir}"
    return f"postgresql://{user}:{password}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}"


# The servers and this process must hash API keys alike (`seed_two_tenants` issues them here).
KEY_SECRET = "test-only-api-key-secret-" + "k" * 40


def server_env(**overrides: str) -> dict[str, str]:
    env = {**os.environ, "Q_WORKERS": "1", "API_KEY_HMAC_SECRET": KEY_SECRET}
    env["DATABASE_URL"] = overrides.pop("DATABASE_URL", None) or live_database_url()
    for name in ("DB_POOL", "DB_POOL_MAX_SIZE", "DB_APPLICATION_NAME", "WEB_CONCURRENCY"):
        env.pop(name, None)
    env.update(overrides)
    return env


PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "test-only-production-secret-" + "x" * 40,
    "ALLOWED_HOSTS": "localhost,.localhost",
    "BASE_DOMAIN": "localhost",
    # Plain HTTP in tests: the proxy's X-Forwarded-Proto says https (BEHIND_PROXY), as in production.
    "BEHIND_PROXY": "true",
}


class Server:
    def __init__(self, cmd: list[str], env: dict[str, str], port: int):
        self.port, self.cmd = port, cmd
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)

    def wait_ready(self, seconds: float = 90) -> Server:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.cmd} exited with {self.proc.returncode}:\n{self.text}")
            try:
                status, _, _ = request(self.port, "GET", "/login/", timeout=5)
                if status < 500:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{self.cmd} did not answer in {seconds}s:\n{self.text}")

    @property
    def text(self) -> str:
        return "".join(self.output[-80:])

    def stop(self, sig: int = signal.SIGTERM, seconds: float = 45) -> int:
        stop_group(self.proc, sig, seconds)
        # Whatever the children left behind in the process group.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.proc.returncode


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGINT, seconds: float = 20) -> None:
    """Stop a process started with start_new_session=True: `sig` to its group, SIGKILL if it
    has not exited after `seconds`."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def request(port, method, path, *, headers=None, body=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": "localhost", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def hammer(port: int, calls: list[dict], *, clients: int = 32, rounds: int = 4) -> Counter:
    """`clients` threads each send every call `rounds` times, all at once. A call is
    {name, path, headers, expect: bytes that must be in the body, refuse: bytes that must not},
    optionally with a JSON `body` (then a POST with a fresh Idempotency-Key) and the `status`
    expected (200). Returns a Counter of outcomes: "ok", or "<status>: <first bytes>" /
    "wrong body" / errors."""
    outcomes: Counter = Counter()
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client(n: int) -> None:
        start.wait()
        for r in range(rounds):
            for k in range(len(calls)):
                call = calls[(n + r + k) % len(calls)]
                method, headers, payload = "GET", call["headers"], None
                if "body" in call:
                    method, payload = "POST", json.dumps(call["body"])
                    headers = {
                        **headers,
                        "Content-Type": "application/json",
                        "Idempotency-Key": f"load-{n}-{r}-{k}-{uuid.uuid4().hex}",
                    }
                try:
                    status, _, body = request(
                        port, method, call["path"], headers=headers, body=payload
                    )
                    if status != call.get("status", 200):
                        outcome = f"{call['name']}: {status}: {body[:120]!r}"
                    elif call["expect"] not in body or call["refuse"] in body:
                        outcome = f"wrong body for {call['name']}: {body[:120]!r}"
                    else:
                        outcome = "ok"
                except Exception as err:  # a refused or reset connection is an error too
                    outcome = f"{call['name']}: {type(err).__name__}: {err}"
                with lock:
                    outcomes[outcome] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def backends(application_prefix: str = "inventory") -> Counter:
    """Server connections to the test database per application_name (the process kind)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name LIKE %s GROUP BY 1",
            [application_prefix + "%"],
        )
        return Counter(dict(cursor.fetchall()))


def wait_for_backend(application_name: str, seconds: float = 60) -> Counter:
    deadline = time.monotonic() + seconds
    while not (held := backends())[application_name]:
        assert time.monotonic() < deadline, f"no connection from {application_name!r}: {held}"
        time.sleep(0.3)
    return held


def collect_static(static_root: Path) -> None:
    """The documented set-up's collectstatic (`make setup`: DEBUG=true) into `static_root`."""
    subprocess.run(
        [PY, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, "DEBUG": "true", "STATIC_ROOT": str(static_root)},
        check=True,
        timeout=300,
    )


def disconnect_others(seconds: float = 15) -> None:
    """Wait for the servers' sessions to end (the test database is dropped at the end)."""
    deadline = time.monotonic() + seconds
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                return
            if time.monotonic() > deadline:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                return
            time.sleep(0.2)


def seed_two_tenants() -> dict:
    """Committed: a small catalog in acme and in globex (SKUs ACME-… and GLOBEX-…) and one API
    key each. Undo with `unseed`."""
    from django.test import override_settings
    from django_tenants.utils import schema_context

    from tenants.models import Organization
    from tenants.services import api_key_issue
    from tests.inventory.helpers import make_catalog

    data = {}
    for slug in ("acme", "globex"):
        org = Organization.objects.get(slug=slug)
        with schema_context(org.schema_name):
            items, locations, lots = make_catalog(
                items=3, locations=1, lots_per_item=1, prefix=slug.upper()
            )
        with override_settings(API_KEY_HMAC_SECRET=KEY_SECRET):
            issued = api_key_issue(organization=org, label="server tests")
        data[slug] = {"org": org, "items": items, "key": issued.raw_key}
    return data


def unseed(usernames=()) -> None:
    from django.contrib.auth import get_user_model

    from tenants.models import ApiKey
    from tests.inventory.helpers import wipe_tenant

    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        for schema in ("acme", "globex"):
            wipe_tenant(schema, cursor)
        cursor.execute(
            "TRUNCATE operations_worker_heartbeats, operations_job_runs, django_q_ormq, "
            "django_q_task, django_session"
        )
    ApiKey.objects.filter(label="server tests").delete()
    get_user_model().objects.filter(username__in=list(usernames)).delete()
