"""End-to-end: a real server (Django's live server thread on the test database), a real worker
(`manage.py qcluster` on the same database) and a real browser (Playwright driving Debian's
chromium). Data is committed so the server and worker see it, and removed after the module."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.db import connection, connections
from django.test.testcases import LiveServerThread
from django_tenants.utils import schema_context

from tests.factories import make_user
from tests.inventory.helpers import make_catalog, wipe_tenant
from tests.server_processes import disconnect_others

ROOT = Path(__file__).resolve().parents[2]
SCREENS = ROOT / "var" / "screens"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PUBLIC_TABLES = [
    "reconciliation_discrepancies",
    "reconciliation_runs",
    "operations_job_runs",
    "operations_backup_checks",
    "operations_backups",
    "operations_worker_heartbeats",
    "django_q_ormq",
    "django_q_task",
    "django_session",
]


def _test_database_url() -> str:
    s = connection.settings_dict
    user, password = quote(s["USER"] or ""), quote(s["PASSWORD"] or "")
    socket_dir = (s.get("OPTIONS") or {}).get("host")
    if socket_dir and not s["HOST"]:
        return f"postgresql://{user}:{password}@/{s['NAME']}?host={socket_dir}"
    return f"postgresql://{user}:{password}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}"


def _seed() -> dict:
    from inventory.services.posting import ledger_entries_create
    from reconciliation.services import reconciliation_run
    from tenants.models import Membership, Organization

    acme, globex = Organization.objects.get(slug="acme"), Organization.objects.get(slug="globex")
    users = {
        "admin": make_user("e2e-admin", superuser=True),
        "support": make_user("e2e-support", org=acme, role=Membership.Role.SUPPORT),
        "owner": make_user("e2e-owner-acme", org=acme, role=Membership.Role.OWNER),
        "globex_owner": make_user("e2e-owner-globex", org=globex, role=Membership.Role.OWNER),
    }
    data = {"users": users}
    for org in (acme, globex):
        with schema_context(org.schema_name):
            items, locations, lots = make_catalog(
                items=12, locations=3, lots_per_item=1, prefix=org.slug.upper()
            )
            entries = [
                {"item": i.sku, "location": loc.code, "qty": f"{n + 1}.5", "kind": "receipt"}
                for n, (i, loc) in enumerate((i, loc) for i in items for loc in locations)
            ]
            entries += [
                {
                    "item": items[0].sku,
                    "location": locations[0].code,
                    "lot": lots[0].code,
                    "qty": f"-{k}",
                    "kind": "issue",
                    "reference": f"PICK-{k}",
                }
                for k in range(1, 61)
            ]
            ledger_entries_create(entries=entries, recorded_by="e2e")
            data[org.slug] = {"items": items, "locations": locations, "lots": lots}
    # Two open discrepancies in acme for support to review.
    with schema_context("acme"), connection.cursor() as cur:
        items = data["acme"]["items"]
        cur.execute(
            "UPDATE inventory_balances SET qty_canonical = qty_canonical + 7 "
            "WHERE item_id IN (%s, %s) AND lot_id IS NULL AND location_id = %s",
            [items[1].id, items[2].id, data["acme"]["locations"][0].id],
        )
        reconciliation_run(mode="full")
    return data


def _cleanup(usernames) -> None:
    from django.contrib.auth import get_user_model

    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        for schema in ("acme", "globex"):
            wipe_tenant(schema, cursor)
        cursor.execute("TRUNCATE " + ", ".join(PUBLIC_TABLES))
    get_user_model().objects.filter(username__in=usernames).delete()


@pytest.fixture(scope="module")
def e2e(django_db_setup, django_db_blocker, tmp_path_factory):
    from django.conf import settings

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make setup` installs Debian's chromium for the browser tests"
        )
    from playwright.sync_api import sync_playwright

    backup_dir = tmp_path_factory.mktemp("backups")
    with django_db_blocker.unblock():
        assert connection.settings_dict["NAME"].startswith("test_")
        original_backup_dir = settings.BACKUP_DIR
        settings.BACKUP_DIR = backup_dir
        data = _seed()
        server = LiveServerThread("localhost", StaticFilesHandler)
        server.daemon = True
        server.start()
        server.is_ready.wait()
        if server.error:
            raise server.error
        worker_env = {
            **os.environ,
            "DATABASE_URL": _test_database_url(),
            "DEBUG": "true",
            "BACKUP_DIR": str(backup_dir),
            "Q_WORKERS": "1",
        }
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=worker_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        SCREENS.mkdir(parents=True, exist_ok=True)
        # Playwright's sync API keeps an event loop on this thread; the ORM calls the tests make
        # between browser steps are ordinary blocking calls. Only for this module's lifetime.
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        pw = sync_playwright().start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield {
                "url": f"http://localhost:{server.port}",
                "port": server.port,
                "browser": browser,
                "data": data,
            }
        finally:
            # The tests' ORM calls ran while Playwright's loop was "running" on this thread, on a
            # connection of their own (asgiref's Local is per context). Close it here, in that
            # context: disconnect_others below would otherwise kill it under the next module.
            connections.close_all()
            browser.close()
            pw.stop()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
            os.killpg(worker.pid, 2)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, 9)
            server.terminate()
            disconnect_others(seconds=10)
            settings.BACKUP_DIR = original_backup_dir
            _cleanup([u.username for u in data["users"].values()])
            shutil.rmtree(backup_dir, ignore_errors=True)


@pytest.fixture
def login(e2e):
    """login("admin") → a Playwright page signed in as that seeded user."""
    contexts = []

    def _login(who: str, *, host: str = "localhost", viewport=(1280, 900)):
        from tests.factories import PASSWORD

        ctx = e2e["browser"].new_context(
            viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True
        )
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(20000)
        page.goto(f"http://{host}:{e2e['port']}/login/")
        page.get_by_label("Username").fill(e2e["data"]["users"][who].username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        return page

    yield _login
    for ctx in contexts:
        ctx.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)


def wait_until(predicate, seconds: float = 20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    raise AssertionError("condition not met in time")
