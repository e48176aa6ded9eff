"""The flows people click through, in a real browser."""

from __future__ import annotations

import csv
import io

import pytest
from django_tenants.utils import schema_context

from inventory.models import Balance
from operations.models import JobRun
from reconciliation.models import Discrepancy
from tests.e2e.conftest import shot, wait_until
from tests.inventory.helpers import balance_mismatches

pytestmark = pytest.mark.e2e


def test_an_admin_runs_backfill_and_validation_from_the_runbook(e2e, login):
    page = login("admin")
    assert page.url.endswith("/fleet/")
    assert page.locator("#fleet tr[data-org=acme]").is_visible()
    shot(page, "fleet")
    # globex: acme's balances hold the discrepancies the support test reviews.
    page.get_by_role("link", name="Globex Corporation").click()
    page.wait_for_selector("h1:has-text('Migration runbook')")
    shot(page, "runbook")
    assert page.locator("#step-backfill").get_attribute("data-done") == "false"

    page.locator("#step-backfill").get_by_role("button", name="Run backfill").click()
    page.wait_for_selector("#job-area [data-status=succeeded]:has-text('backfill')")
    # The steps refresh on their own when the job ends: no reload.
    page.wait_for_selector("#step-backfill[data-done=true]")
    page.locator("#step-validate").get_by_role("button", name="Validate").click()
    page.wait_for_selector("#job-area [data-status=succeeded]:has-text('validate')")
    assert "all checks passed" in page.locator("#job-area").inner_text()
    assert page.locator("#step-validate .checks li").count() >= 8
    shot(page, "runbook-after-jobs")
    jobs = {j.kind: j for j in JobRun.objects.filter(schema_name="globex")}
    assert jobs["backfill"].status == jobs["validate"].status == "succeeded"
    assert jobs["backfill"].requested_by == "e2e-admin"


def test_the_rollback_needs_the_typed_slug(e2e, login):
    page = login("admin")
    page.goto(f"{e2e['url']}/orgs/acme/runbook/")
    page.get_by_label("Type acme to confirm").fill("globex")
    page.get_by_role("button", name="Roll back acme").click()
    page.wait_for_selector("#rollback-job .error")
    assert not JobRun.objects.filter(kind="rollback").exists()


def test_a_support_user_approves_one_discrepancy_and_dismisses_another(e2e, login):
    page = login("support")
    assert page.url.endswith("/reconciliation/")
    rows = page.locator("#discrepancies tbody tr[data-id]")
    assert rows.count() == 2
    shot(page, "reconciliation")
    first_id, second_id = (rows.nth(i).get_attribute("data-id") for i in range(2))

    rows.nth(0).locator("a[href^='/reconciliation/']").click()  # the row also links its item
    page.wait_for_selector("#entries")
    shot(page, "discrepancy")
    page.get_by_label("Note (optional)").fill("recount done")
    page.get_by_role("button", name="Approve: set balance to ledger sum").click()
    page.wait_for_load_state()
    shot(page, "discrepancy-approved")
    page.wait_for_selector("#status:has-text('Approved')")

    page.goto(f"{e2e['url']}/reconciliation/{second_id}/")
    page.get_by_role(
        "button", name="Dismiss"
    ).click()  # the reason is required: the browser stops it
    assert Discrepancy.objects.get(pk=second_id).status == "open"
    page.get_by_label("Reason for dismissing (required)").fill("scanner fault, stock is right")
    page.get_by_role("button", name="Dismiss").click()
    page.wait_for_selector("#status:has-text('Dismissed')")

    approved, dismissed = (
        Discrepancy.objects.get(pk=first_id),
        Discrepancy.objects.get(pk=second_id),
    )
    assert (approved.status, approved.resolved_by.username, approved.note) == (
        "approved",
        "e2e-support",
        "recount done",
    )
    assert (dismissed.status, dismissed.note) == ("dismissed", "scanner fault, stock is right")
    page.goto(f"{e2e['url']}/reconciliation/?status=all")
    assert "e2e-support" in page.locator("#discrepancies").inner_text()  # who resolved what
    with schema_context("acme"):
        # Approved key fixed; dismissed key still differs (dismissing changes no balance).
        assert len(balance_mismatches("acme")) == 1


def test_an_owner_filters_balances_exports_csv_and_opens_an_items_history(e2e, login):
    page = login("owner")
    assert page.url.endswith("/orgs/acme/")  # owners land on their organisation's overview
    page.goto(f"{e2e['url']}/orgs/acme/balances/")
    shot(page, "balances")
    sku = e2e["data"]["acme"]["items"][0].sku
    page.get_by_label("Item (SKU or name)").fill(sku)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(f"**q={sku}**")
    shown = page.locator("#balances tbody tr").count()
    with schema_context("acme"):
        expected = Balance.objects.filter(item__sku=sku).count()
    assert shown == expected == 4  # three locations without lot, one with

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    text = open(download_info.value.path(), encoding="utf-8").read()
    exported = list(csv.DictReader(io.StringIO(text)))
    assert len(exported) == shown and {r["sku"] for r in exported} == {sku}

    page.get_by_label("Balance", exact=True).select_option("negative")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**sign=negative**")
    assert (
        page.locator("#balances tbody tr").count() == 1
    )  # the lot balance the issues drove below zero

    page.get_by_role("link", name=sku).first.click()
    page.wait_for_selector("#history")
    shot(page, "item")
    assert page.locator("#history tbody tr").count() == 50  # first page, newest first
    first_id = int(page.locator("#history tbody tr td").first.inner_text())
    page.get_by_role("link", name="Older →").click()
    page.wait_for_selector("#history")
    assert int(page.locator("#history tbody tr td").first.inner_text()) < first_id


def test_an_owner_creates_a_key_shown_once_and_revokes_it(e2e, login):
    page = login("owner")
    page.goto(f"{e2e['url']}/orgs/acme/api-keys/")
    page.get_by_label("Label (who or what will use it)").fill("warehouse scanner")
    page.get_by_role("button", name="Create key").click()
    raw = page.locator("#raw-key").inner_text().strip()
    assert raw.startswith("ie_")
    shot(page, "api-keys")
    page.get_by_role("button", name="Copy to clipboard").click()
    wait_until(lambda: page.get_by_role("button", name="Copied").count() == 1)
    page.goto(f"{e2e['url']}/orgs/acme/api-keys/")
    assert raw not in page.content()  # shown once only
    # Revoking is a link to a confirmation step, then the confirming button.
    page.get_by_role("link", name=f"Revoke key {raw.split('_')[1]}").click()
    page.get_by_role("button", name="Yes, revoke this key").click()
    page.wait_for_selector("text=revoked")


def test_a_globex_owner_cannot_reach_acmes_pages(e2e, login):
    page = login("globex_owner")
    assert page.url.endswith("/orgs/globex/")  # the overview of their own organisation
    # Another organisation's pages do not reveal it exists (404); platform admins' pages refuse
    # the role (403).
    for path, status in (
        ("/orgs/acme/balances/", 404),
        ("/orgs/acme/api-keys/", 404),
        (f"/orgs/acme/items/{e2e['data']['acme']['items'][0].id}/", 404),
        ("/orgs/acme/balances.csv", 404),
        ("/orgs/acme/runbook/", 403),  # the runbook is the platform admins'
        ("/fleet/", 403),
        ("/reconciliation/", 403),
    ):
        response = page.goto(f"{e2e['url']}{path}")
        assert response.status == status, (path, response.status)
        assert "ACME-" not in page.content()
    # The session cookie is the platform host's: acme's host sees no credentials at all.
    response = page.goto(f"http://acme.localhost:{e2e['port']}/api/balances")
    assert response.status == 401
    assert "no_credentials" in page.content()


def test_the_backup_page_takes_a_backup(e2e, login):
    page = login("admin")
    page.goto(f"{e2e['url']}/backups/")
    page.get_by_role("button", name="Take a backup now").click()
    page.wait_for_selector("#backup-job [data-status=succeeded]", timeout=60000)
    page.wait_for_selector("#backups tbody tr:has-text('.dump')")
    shot(page, "backups")


def test_pages_read_on_a_phone(e2e, login):
    page = login("owner", viewport=(390, 844))
    page.goto(f"{e2e['url']}/orgs/acme/balances/")
    page.wait_for_selector("#balances")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"the page scrolls sideways on a phone ({width}px)"
    shot(page, "balances-phone")
