"""The background CSV export in a browser (issue 18.3): an owner's Export CSV on a view over
EXPORT_STREAM_MAX_ROWS queues the job through htmx, the run's progress polls in place until a
real `manage.py qcluster` has written the file, and the Download CSV link saves exactly the rows
of the view. Django's live server thread, Playwright with Debian's chromium (as tests/e2e/)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.db import connection, connections
from django.test.testcases import LiveServerThread
from django_tenants.utils import schema_context

from inventory.forms import BalanceQuery
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.factories import PASSWORD, make_user
from tests.inventory.export_helpers import many_balances, python_export
from tests.inventory.helpers import wipe_tenant
from tests.server_processes import ROOT, disconnect_others, server_env, stop_group

ROWS = 3_000
OWNER = "export-browser-owner"


@pytest.fixture(scope="module")
def site(django_db_setup, django_db_blocker, tmp_path_factory):
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from playwright.sync_api import sync_playwright

    from tenants.models import Membership, Organization

    exports = tmp_path_factory.mktemp("exports")
    saved = settings.EXPORT_DIR, settings.EXPORT_STREAM_MAX_ROWS
    with django_db_blocker.unblock():
        assert connection.settings_dict["NAME"].startswith("test_")
        settings.EXPORT_DIR, settings.EXPORT_STREAM_MAX_ROWS = exports, 1000
        acme = Organization.objects.get(slug="acme")
        assert many_balances("acme", items=30, locations=100) == ROWS
        make_user(OWNER, org=acme, role=Membership.Role.OWNER)
        server = LiveServerThread("localhost", StaticFilesHandler)
        server.daemon = True
        server.start()
        server.is_ready.wait()
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=server_env(DEBUG="true", EXPORT_DIR=str(exports)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        pw = sync_playwright().start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield {"url": f"http://localhost:{server.port}", "browser": browser}
        finally:
            connections.close_all()
            browser.close()
            pw.stop()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
            stop_group(worker, seconds=15)
            server.terminate()
            disconnect_others(seconds=10)
            settings.EXPORT_DIR, settings.EXPORT_STREAM_MAX_ROWS = saved
            connection.set_schema_to_public()
            with connection.cursor() as cursor:
                wipe_tenant("acme", cursor)
                cursor.execute(
                    "TRUNCATE operations_job_runs, operations_worker_heartbeats, django_q_ormq, "
                    "django_q_task, django_session"
                )
            get_user_model().objects.filter(username=OWNER).delete()


def test_an_owner_exports_a_big_view_in_the_background_and_downloads_it(site):
    ctx = site["browser"].new_context(accept_downloads=True)
    try:
        page = ctx.new_page()
        page.set_default_timeout(30000)
        page.goto(f"{site['url']}/login/")
        page.get_by_label("Username").fill(OWNER)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        page.goto(f"{site['url']}/orgs/acme/balances/?sort=-qty")
        assert page.locator("#result-count").inner_text() == f"{ROWS} balance rows"
        assert page.locator("a#export-csv").count() == 0  # no stream for this view
        page.locator("button#export-csv").click()
        # The run appears in place, polls, and offers its file once the worker has written it.
        page.wait_for_selector("#export-job .job")
        link = page.wait_for_selector("#export-download", timeout=60000)
        assert "succeeded" in page.locator("#export-job .job-state").inner_text()
        with page.expect_download() as download:
            link.click()
        body = open(download.value.path(), "rb").read()  # noqa: SIM115
    finally:
        ctx.close()
    with schema_context("acme"):
        assert body == python_export(BalanceQuery(sort="-qty"))
    assert body.count(b"\r\n") == ROWS + 1
