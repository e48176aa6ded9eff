"""The servers as operators start them, as real processes on a free port against the test
database: `make run`'s development server and gunicorn answer 32 concurrent clients without an
error and hold a bounded number of database connections; a pooled connection never carries one
request's organisation into the next; a wrong DATABASE_URL is one line and exit code 1."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
from decimal import Decimal

import pytest
from django.db import connection

from tests.server_processes import (
    PRODUCTION,
    PY,
    ROOT,
    Server,
    backends,
    collect_static,
    disconnect_others,
    free_port,
    hammer,
    request,
    seed_two_tenants,
    server_env,
    unseed,
    wait_for_backend,
)

CLIENTS = 32
HTTPS = {"X-Forwarded-Proto": "https"}  # what the proxy adds (BEHIND_PROXY=true)


@pytest.fixture(scope="module")
def tenants(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        data = seed_two_tenants()
        try:
            yield data
        finally:
            disconnect_others()
            unseed()


def _keyed_reads(tenants, extra_headers=None) -> list[dict]:
    """A keyed item list per organisation; each must show its own SKUs and never the other's."""
    return [
        {
            "name": slug,
            "path": "/api/items-enterprise",
            "headers": {"X-Api-Key": tenants[slug]["key"], **(extra_headers or {})},
            "expect": f"{slug.upper()}-0000".encode(),
            "refuse": f"{other.upper()}-".encode(),
        }
        for slug, other in (("acme", "globex"), ("globex", "acme"))
    ]


@pytest.fixture(scope="module")
def static_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("staticfiles")
    collect_static(root)
    return str(root)


def _load(tenants, extra_headers=None) -> list[dict]:
    """The keyed reads, and a posting to acme (one receipt of 1, a fresh idempotency key each)."""
    post = {
        "name": "post",
        "path": "/api/ledger",
        "headers": {"X-Api-Key": tenants["acme"]["key"], **(extra_headers or {})},
        "body": {
            "entries": [
                {"item": "ACME-0000", "location": "ACME-LOC-0", "qty": "1", "kind": "receipt"}
            ]
        },
        "status": 201,
        "expect": b"ACME-0000",
        "refuse": b"GLOBEX-",
    }
    return [*_keyed_reads(tenants, extra_headers), post]


def _acme_on_hand(django_db_blocker) -> tuple[Decimal, Decimal]:
    """(balance, ledger sum) of the key the load posts to, from this process."""
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT COALESCE(sum(b.qty_canonical), 0) FROM acme.inventory_balances b"
            "          JOIN acme.inventory_items i ON i.id = b.item_id WHERE i.sku = 'ACME-0000'),"
            "       (SELECT COALESCE(sum(l.qty_canonical), 0) FROM acme.inventory_ledger l"
            "          JOIN acme.inventory_items i ON i.id = l.item_id WHERE i.sku = 'ACME-0000')"
        )
        return cursor.fetchone()


def _gunicorn(port: int, **env) -> Server:
    return Server(
        [PY, "-m", "gunicorn", "-c", "config/gunicorn.conf.py"],
        server_env(**PRODUCTION, PORT=str(port), **env),
        port,
    )


def test_it_serves_32_concurrent_clients_from_make_runs_development_server(
    tenants, django_db_blocker
):
    for _attempt in range(3):
        port = free_port()
        before = _acme_on_hand(django_db_blocker)[0]
        # What `make run` starts: scripts/run_dev.py, i.e. runserver (its reloader on) and qcluster.
        server = Server([PY, "scripts/run_dev.py"], server_env(DEBUG="true", PORT=str(port)), port)
        try:
            server.wait_ready()
            outcomes = hammer(port, _load(tenants), clients=CLIENTS, rounds=3)
            held = backends()
        finally:
            server.stop(signal.SIGTERM)
        # A file of the checkout edited meanwhile (by someone else) restarts runserver, and the
        # requests of that moment are refused: not what this measures, so run again.
        if "changed, reloading" not in server.text:
            break
    assert outcomes == {"ok": CLIENTS * 3 * 3}, server.text
    # runserver's pool (DB_POOL_MAX_SIZE, 4 by default), whatever the number of request threads.
    assert 1 <= held["inventory runserver"] <= 4, held
    balance, ledger = _acme_on_hand(django_db_blocker)
    assert balance == ledger == before + CLIENTS * 3


def test_it_serves_32_concurrent_clients_from_gunicorn(tenants, django_db_blocker):
    port = free_port()
    before = _acme_on_hand(django_db_blocker)[0]
    server = _gunicorn(port, WEB_CONCURRENCY="2")
    try:
        server.wait_ready()
        outcomes = hammer(port, _load(tenants, HTTPS), clients=CLIENTS, rounds=3)
        held = backends()
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.text
    assert outcomes == {"ok": CLIENTS * 3 * 3}, server.text
    assert 1 <= held["inventory web"] <= 2, held  # 2 sync workers x a pool of 1
    balance, ledger = _acme_on_hand(django_db_blocker)
    assert balance == ledger == before + CLIENTS * 3


@pytest.fixture
def limit_set_calls(tmp_path):
    """Settings with django-tenants' TENANT_LIMIT_SET_CALLS on (issue `SET search_path` only when
    the wrapper thinks the path changed): the case where a reused connection could keep the
    previous request's organisation."""
    (tmp_path / "limit_set_calls_settings.py").write_text(
        "from config.settings import *  # noqa: F403\nTENANT_LIMIT_SET_CALLS = True\n"
    )
    return {"DJANGO_SETTINGS_MODULE": "limit_set_calls_settings", "PYTHONPATH": str(tmp_path)}


def test_it_never_carries_an_organisation_to_the_next_request_on_a_pooled_connection(
    tenants, limit_set_calls, static_root
):
    port = free_port()
    # One worker and a pool of one: every request below runs on the same process, the same
    # connection wrapper and the same server connection.
    server = _gunicorn(port, WEB_CONCURRENCY="1", STATIC_ROOT=static_root, **limit_set_calls)
    acme, globex = _keyed_reads(tenants, HTTPS)
    try:
        server.wait_ready()
        seen = []
        for call in [acme, globex, acme, acme, globex, globex, acme] * 3:
            status, _, body = request(port, "GET", call["path"], headers=call["headers"])
            seen.append((call["name"], status, call["expect"] in body, call["refuse"] in body))
            # A public page in between (search_path public) must not disturb the next either.
            assert request(port, "GET", "/login/", headers=HTTPS)[0] == 200
        held = backends()
    finally:
        server.stop(signal.SIGTERM)
    assert all(status == 200 and own and not other for _, status, own, other in seen), seen
    assert held["inventory web"] == 1, held


def test_it_stops_gunicorn_and_the_worker_together_under_make_serve(tenants):
    port = free_port()
    env = server_env(**PRODUCTION, PORT=str(port), WEB_CONCURRENCY="1")
    server = Server([PY, "deploy/serve.py"], env, port)
    try:
        server.wait_ready()
        headers = {"X-Api-Key": tenants["acme"]["key"], **HTTPS}
        assert request(port, "GET", "/api/items-enterprise", headers=headers)[0] == 200
        held = wait_for_backend("inventory qcluster")  # the worker starts once the web listens
        assert held["inventory web"] == 1, held
        # SIGTERM to the supervisor: both stop, gracefully, and it reports success.
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0, server.text
    finally:
        server.stop()
    with pytest.raises(ProcessLookupError):  # nothing of the process group is left
        os.killpg(server.proc.pid, 0)
    assert "stopped." in server.text


# --- Refusals at start: one line, exit code 1 -------------------------------------------------


def _unreachable_url() -> tuple[str, int]:
    port = free_port()  # nothing listens there
    return f"postgresql://inventory:secret@127.0.0.1:{port}/inventory", port


@pytest.mark.parametrize(
    "argv",
    [
        ["manage.py", "list_organizations"],
        ["manage.py", "migrate_schemas"],
        ["manage.py", "runserver", "127.0.0.1:0"],
        ["manage.py", "qcluster"],
    ],
    ids=lambda argv: argv[1],
)
def test_it_names_an_unreachable_database_in_one_line(argv):
    url, port = _unreachable_url()
    result = subprocess.run(
        [PY, *argv],
        cwd=ROOT,
        env=server_env(DATABASE_URL=url, DEBUG="true"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result.stderr
    assert lines == [
        f"manage.py {argv[1]}: cannot connect to the database at 127.0.0.1:{port}: "
        "Connection refused (check DATABASE_URL)"
    ]


def test_it_refuses_to_start_gunicorn_on_an_unreachable_database():
    url, port = _unreachable_url()
    server = _gunicorn(free_port(), DATABASE_URL=url)
    assert server.proc.wait(timeout=60) == 1
    server._reader.join(timeout=5)
    assert f"gunicorn: cannot connect to the database at 127.0.0.1:{port}" in server.text
    assert "Traceback" not in server.text


def test_it_refuses_to_start_more_workers_than_the_database_admits(tenants):
    server = _gunicorn(free_port(), WEB_CONCURRENCY="500")
    assert server.proc.wait(timeout=60) == 1
    server._reader.join(timeout=5)
    assert "gunicorn: too many database connections: 500 web process(es) x 1" in server.text
    assert "max_connections" in server.text
    assert "Booting worker" not in server.text


@pytest.mark.parametrize(
    "missing, message",
    [
        ("SECRET_KEY", "SECRET_KEY is not set"),
        ("BASE_DOMAIN", "BASE_DOMAIN not set: production needs SECRET_KEY, ALLOWED_HOSTS"),
    ],
)
def test_it_refuses_to_serve_without_the_production_environment(missing, message):
    env = server_env(**PRODUCTION, PORT=str(free_port()))
    env.pop(missing)
    result = subprocess.run(
        [PY, "-m", "config.startup", "--production", "--name", "make serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"make serve: {message}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_it_keeps_make_run_the_development_server_and_make_serve_gunicorn():
    makefile = (ROOT / "Makefile").read_text()
    serve = makefile.split("\nserve: $(DEPS_STAMP)\n", 1)[1].split("\n\n", 1)[0]
    assert "serve: export DEBUG = false" in makefile
    assert "deploy/serve.py" in serve and "collectstatic" in serve and "load_demo_data" not in serve
    assert "scripts/run_dev.py" in makefile.split("\nrun: setup\n", 1)[1].split("\n\n", 1)[0]
    assert textwrap.dedent(
        """\
        web: HOST=0.0.0.0 gunicorn -c config/gunicorn.conf.py
        worker: python manage.py qcluster
        """
    ) in (ROOT / "Procfile").read_text()
