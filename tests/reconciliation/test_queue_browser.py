"""The support queue in a real browser, with a real server and a real worker (the e2e fixtures):
select all, "Run now" refreshing the queue in place with honest counts, bulk dismiss."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from reconciliation.models import Discrepancy, ReconciliationRun
from tests.e2e.conftest import e2e, login, shot, wait_until  # noqa: F401  (fixtures)

pytestmark = pytest.mark.e2e

ROWS = "#discrepancies tbody tr[data-id]"


def test_it_refreshes_the_queue_when_a_run_finishes_and_dismisses_all_selected(e2e, login):  # noqa: F811
    page = login("support")
    assert page.url.endswith("/reconciliation/")
    assert page.locator(ROWS).count() == 2  # the two the seed opened
    boxes = page.locator(f"{ROWS} input[name=ids]")
    page.locator("#select-all").check()
    assert [boxes.nth(i).is_checked() for i in range(2)] == [True, True]
    page.locator("#select-all").uncheck()
    assert not boxes.nth(0).is_checked()

    # A third key goes wrong (committed: the worker sees it); the page is not reloaded.
    items, locations = e2e["data"]["acme"]["items"], e2e["data"]["acme"]["locations"]
    with schema_context("acme"), connection.cursor() as cur:
        cur.execute(
            "UPDATE inventory_balances SET qty_canonical = qty_canonical - 3 "
            "WHERE item_id = %s AND location_id = %s AND lot_id IS NULL",
            [items[5].id, locations[1].id],
        )
    page.get_by_label("Organisation", exact=True).first.select_option("acme")
    page.get_by_role("button", name="Reconcile").click()
    page.wait_for_selector("#run-job [data-status=succeeded]")
    page.wait_for_function(
        f"document.querySelectorAll('{ROWS}').length === 3"
    )  # refreshed in place
    run = ReconciliationRun.objects.filter(triggered_by__startswith="user:").latest("started_at")
    assert (run.opened, run.still_open) == (1, 2)
    assert "1 new, 2 still open" in page.locator("#run-job").inner_text()
    row = page.locator(f'#runs tr[data-run="{run.id}"]')
    assert row.locator("td.new").inner_text() == "1"
    assert row.locator("td.still-open").inner_text() == "2"
    shot(page, "reconciliation-after-run")

    # Select all, dismiss with one reason.
    page.locator("#select-all").check()
    page.get_by_label("Note for the selected").fill("stock count pending")
    page.get_by_role("button", name="Dismiss selected").click()
    page.wait_for_selector("text=Dismissed 3 discrepancies.")
    wait_until(
        lambda: (
            set(Discrepancy.objects.filter(organization__slug="acme").values_list("status", "note"))
            == {("dismissed", "stock count pending")}
        )
    )
    assert page.locator(ROWS).count() == 0
