"""The discrepancy trend on the support queue: a server-drawn SVG whose points are the runs'
counts, the same figures in a table, one organisation or all, and no more queries with more runs."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from reconciliation.models import ReconciliationRun
from tests.page_helpers import queries_for, text

pytestmark = pytest.mark.django_db


def make_runs(org, count: int, *, start: int = 0) -> list[ReconciliationRun]:
    base = timezone.now() - timedelta(days=40)
    return [
        ReconciliationRun.objects.create(
            organization=org,
            mode="full",
            tolerance=0,
            status="succeeded",
            started_at=base + timedelta(hours=i),
            finished_at=base + timedelta(hours=i, minutes=1),
            differences_found=i + 3,
            auto_corrected=i % 2,
            opened=i,
            still_open=2,
        )
        for i in range(start, start + count)
    ]


def circles(html: str, series: str) -> list[str]:
    group = re.search(rf'<g class="series [^"]*" data-series="{series}">(.*?)</g>', html, re.S)
    assert group, f"no series {series}"
    return re.findall(r'<circle [^>]*data-value="([^"]*)"', group.group(1))


def table_column(html: str, col: int) -> list[str]:
    body = re.search(r'<table id="trend-table">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return [re.findall(r'<td class="num" data-value="([^"]*)"', row)[col] for row in body.split("</tr>")[:-1]]


def test_it_draws_the_last_30_runs_found_auto_corrected_and_open(as_admin, acme):
    runs = make_runs(acme, 35)
    html = text(as_admin.get("/reconciliation/?org=acme"))
    last = runs[-30:]
    assert circles(html, "Found") == [str(r.differences_found) for r in last]
    assert circles(html, "Auto-corrected") == [str(r.auto_corrected) for r in last]
    assert circles(html, "Open") == [str(r.opened + r.still_open) for r in last]
    assert table_column(html, 0) == [str(r.differences_found) for r in last]
    assert table_column(html, 2) == [str(r.opened + r.still_open) for r in last]


def test_it_shows_one_organisation_or_all(as_admin, acme, globex):
    make_runs(acme, 2)
    make_runs(globex, 3, start=10)
    assert circles(text(as_admin.get("/reconciliation/?org=globex")), "Found") == ["13", "14", "15"]
    every = circles(text(as_admin.get("/reconciliation/")), "Found")
    assert sorted(every) == sorted(["3", "4", "13", "14", "15"])


def test_it_leaves_out_dry_runs_and_running_ones(as_admin, acme):
    [kept] = make_runs(acme, 1)
    ReconciliationRun.objects.create(
        organization=acme,
        mode="full",
        tolerance=0,
        dry_run=True,
        status="succeeded",
        started_at=timezone.now(),
        differences_found=99,
    )
    ReconciliationRun.objects.create(
        organization=acme,
        mode="full",
        tolerance=0,
        status="running",
        started_at=timezone.now(),
        differences_found=98,
    )
    assert circles(text(as_admin.get("/reconciliation/")), "Found") == ["3"]


def test_it_says_what_to_do_when_nothing_has_run(as_acme_support, acme):
    html = text(as_acme_support.get("/reconciliation/"))
    assert "No reconciliation has run yet: start one above" in html
    assert "<svg" not in html


def test_it_reads_the_trend_in_one_query_whatever_the_number_of_runs(as_admin, acme):
    make_runs(acme, 2)
    small = queries_for(as_admin, "/reconciliation/?org=acme")
    make_runs(acme, 40, start=2)
    large = queries_for(as_admin, "/reconciliation/?org=acme")
    assert small[0] == large[0]
    trend = [q for q in large[1] if "reconciliation_runs" in q]
    assert len(trend) == 1, trend
