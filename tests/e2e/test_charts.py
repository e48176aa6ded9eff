"""The charts drawn in a real browser: the item page's on-hand chart and the queue's trend are SVGs
whose points carry exactly the numbers of the table beside them; the owner's home; screenshots at
1366×900 and 390×844 (var/screens/)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from tests.e2e.conftest import shot

pytestmark = pytest.mark.e2e

SIZES = {"wide": (1366, 900), "phone": (390, 844)}


@pytest.fixture(scope="module")
def history(e2e, django_db_blocker):
    """Three weeks of movements for acme's second item and a few more reconciliation runs."""
    from inventory.services.posting import ledger_entries_create
    from reconciliation.models import ReconciliationRun
    from tenants.models import Organization

    item = e2e["data"]["acme"]["items"][1]
    locations = e2e["data"]["acme"]["locations"]
    now = timezone.now()
    with django_db_blocker.unblock():
        with schema_context("acme"):
            ledger_entries_create(
                entries=[
                    {
                        "item": item.sku,
                        "location": locations[d % 3].code,
                        "qty": str(Decimal(40) if d % 4 == 0 else Decimal(-7) - d % 3),
                        "kind": "receipt" if d % 4 == 0 else "issue",
                        "occurred_at": (now - timedelta(days=d, hours=2)).isoformat(),
                    }
                    for d in range(1, 22)
                ],
                recorded_by="e2e",
            )
        acme = Organization.objects.get(slug="acme")
        for k in range(6):
            ReconciliationRun.objects.create(
                organization=acme,
                mode="full",
                status="succeeded",
                tolerance=0,
                started_at=now - timedelta(days=7 - k),
                finished_at=now - timedelta(days=7 - k) + timedelta(seconds=30),
                keys_checked=36,
                differences_found=[4, 6, 3, 8, 5, 2][k],
                auto_corrected=[1, 2, 0, 3, 1, 0][k],
                opened=[3, 1, 1, 2, 0, 1][k],
                still_open=[0, 3, 2, 3, 4, 1][k],
            )
    return item


def points_and_table(page, chart_id: str, series: str, column: int) -> tuple[list, list, int]:
    chart = page.locator(f"#{chart_id}")
    circles = chart.locator(f'g[data-series="{series}"] circle')
    drawn = circles.evaluate_all("cs => cs.filter(c => c.getBoundingClientRect().width > 0).length")
    values = circles.evaluate_all("cs => cs.map(c => c.dataset.value)")
    cells = page.locator(f"#{chart_id}-table tbody tr").evaluate_all(
        f"rows => rows.map(r => r.querySelectorAll('td')[{column}].dataset.value)"
    )
    return values, cells, drawn


def test_the_item_page_draws_on_hand_matching_its_table(e2e, login, history):
    for name, size in SIZES.items():
        page = login("owner", viewport=size)
        page.goto(f"{e2e['url']}/orgs/acme/items/{history.id}/")
        values, cells, drawn = points_and_table(page, "onhand-chart", "Total", 0)
        shot(page, f"item-chart-{name}")
        assert len(values) == 30 and drawn == 30
        assert values == cells
        assert len(set(values)) > 3  # it moved over the weeks: not a flat line
        assert page.locator("#history th", has_text="After").count() == 1
        shot(page, f"item-chart-{name}")


def test_the_queue_draws_the_trend_matching_its_table(e2e, login, history):
    for name, size in SIZES.items():
        page = login("support", viewport=size)
        page.goto(f"{e2e['url']}/reconciliation/?org=acme")
        values, cells, drawn = points_and_table(page, "trend", "Found", 0)
        # The six older runs, then the seed's own run (just now).
        assert values[:6] == ["4", "6", "3", "8", "5", "2"] and len(values) == 7
        assert values == cells and drawn == len(values)
        open_values, open_cells, _ = points_and_table(page, "trend", "Open", 2)
        assert open_values == open_cells
        shot(page, f"queue-trend-{name}")


def test_the_owner_home_links_into_the_balance_browser(e2e, login, history):
    for name, size in SIZES.items():
        page = login("owner", viewport=size)
        page.goto(f"{e2e['url']}/orgs/acme/")
        assert page.locator("#per-location tbody tr").count() >= 3
        shot(page, f"org-home-{name}")
    page.locator("#per-location tbody tr a").first.click()
    page.wait_for_load_state()
    assert "/balances/?location=" in page.url
