"""The reconciliation pages (support staff and platform admins): the queue with its filters, one
discrepancy with its ledger rows, approve / dismiss, bulk approve, and "run now"."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from operations.models import JobRun
from reconciliation.models import Discrepancy, ReconciliationRun
from tests.page_helpers import (
    assert_login_redirect,
    balance_of,
    messages_of,
    open_discrepancies,
    table_body,
    text,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme_d(acme):
    """An open discrepancy of 5 in acme."""
    [d] = open_discrepancies("acme", 1, prefix="A", by="5")
    return d


@pytest.fixture
def globex_d(globex):
    """An open discrepancy of 20 in globex."""
    [d] = open_discrepancies("globex", 1, prefix="G", by="-20")
    return d


def queue_ids(response, status: int = 200) -> list[int]:
    assert response.status_code == status
    return [int(i) for i in re.findall(r'<tr data-id="(\d+)">', text(response))]


# --- queue ---------------------------------------------------------------------------------------


def test_it_lists_every_discrepancy_for_platform_admins(as_admin, acme_d, globex_d):
    # Largest first.
    assert queue_ids(as_admin.get("/reconciliation/")) == [globex_d.id, acme_d.id]


def test_it_lists_only_the_supported_organisations_discrepancies(
    as_acme_support, as_globex_support, acme_d, globex_d
):
    assert queue_ids(as_acme_support.get("/reconciliation/")) == [acme_d.id]
    globex_view = as_globex_support.get("/reconciliation/")
    assert queue_ids(globex_view) == [globex_d.id]
    html = text(globex_view)
    assert acme_d.sku not in html
    assert '<option value="acme"' not in html  # nor offered in the filters / run form
    # Asking for another organisation's rows by filter shows nothing: not one of the choices.
    refused = as_globex_support.get("/reconciliation/?org=acme")
    assert queue_ids(refused, 400) == [globex_d.id]  # the bad filter is ignored, not obeyed
    assert acme_d.sku not in text(refused) and "Select a valid choice" in text(refused)


def test_it_lists_runs_only_of_supported_organisations(as_globex_support, acme_d, globex_d):
    runs = table_body(text(as_globex_support.get("/reconciliation/")), "runs")
    assert "<td>globex</td>" in runs and "<td>acme</td>" not in runs


def test_it_refuses_the_queue_to_owners_without_support_role(as_acme_owner, acme_d):
    assert as_acme_owner.get("/reconciliation/").status_code == 403
    assert as_acme_owner.get(f"/reconciliation/{acme_d.id}/").status_code == 403
    assert as_acme_owner.post(f"/reconciliation/{acme_d.id}/approve/").status_code == 403
    assert as_acme_owner.post("/reconciliation/approve/", {"ids": [acme_d.id]}).status_code == 403
    assert as_acme_owner.post("/reconciliation/run/", {"org": "acme"}).status_code == 403
    acme_d.refresh_from_db()
    assert acme_d.status == "open"


def test_it_asks_anonymous_visitors_to_log_in_for_reconciliation(anon, acme_d):
    assert_login_redirect(anon.get("/reconciliation/"), "/reconciliation/")
    assert_login_redirect(
        anon.get(f"/reconciliation/{acme_d.id}/"), f"/reconciliation/{acme_d.id}/"
    )
    response = anon.post(f"/reconciliation/{acme_d.id}/approve/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    acme_d.refresh_from_db()
    assert acme_d.status == "open"


def test_it_filters_the_queue_by_organisation(as_admin, acme_d, globex_d):
    assert queue_ids(as_admin.get("/reconciliation/?org=globex")) == [globex_d.id]
    assert queue_ids(as_admin.get("/reconciliation/?org=acme")) == [acme_d.id]


def test_it_filters_the_queue_by_status(as_admin, admin_user, acme_d, globex_d):
    from reconciliation.services import discrepancy_approve

    discrepancy_approve(discrepancy_id=acme_d.id, user=admin_user)
    assert queue_ids(as_admin.get("/reconciliation/")) == [globex_d.id]  # open by default
    assert queue_ids(as_admin.get("/reconciliation/?status=approved")) == [acme_d.id]
    assert queue_ids(as_admin.get("/reconciliation/?status=dismissed")) == []
    assert queue_ids(as_admin.get("/reconciliation/?status=all")) == [globex_d.id, acme_d.id]


def test_it_filters_the_queue_by_size(as_admin, acme_d, globex_d):
    assert acme_d.abs_difference == Decimal(5) and globex_d.abs_difference == Decimal(20)
    assert queue_ids(as_admin.get("/reconciliation/?min=10")) == [globex_d.id]
    assert queue_ids(as_admin.get("/reconciliation/?min=5")) == [globex_d.id, acme_d.id]
    assert queue_ids(as_admin.get("/reconciliation/?max=10")) == [acme_d.id]
    assert queue_ids(as_admin.get("/reconciliation/?max=5")) == []  # below, not up to
    assert queue_ids(as_admin.get("/reconciliation/?min=1&max=20.5")) == [globex_d.id, acme_d.id]


def test_it_reports_a_size_that_is_not_a_number(as_admin, acme_d, globex_d):
    response = as_admin.get("/reconciliation/?min=abc&max=10")
    assert response.status_code == 400
    html = text(response)
    assert "Size at least: Enter a number. (“abc”)" in html
    assert 'name="min" value="abc"' in html
    # The bad bound is ignored; the good one still applies.
    assert queue_ids(response, 400) == [acme_d.id]


# --- detail --------------------------------------------------------------------------------------


def test_it_shows_a_discrepancy_with_its_ledger_entries(as_admin, acme_d):
    from django_tenants.utils import schema_context

    from inventory.models import LedgerEntry

    with schema_context("acme"):
        entry_ids = list(
            LedgerEntry.objects.filter(item_id=acme_d.item_id).values_list("id", flat=True)
        )
    response = as_admin.get(f"/reconciliation/{acme_d.id}/")
    assert response.status_code == 200
    html = text(response)
    assert f"Discrepancy {acme_d.id}" in html and acme_d.sku in html
    entries = table_body(html, "entries")
    assert entry_ids and all(f"<td>{i}</td>" in entries for i in entry_ids)
    assert "receipt" in entries
    assert f'action="/reconciliation/{acme_d.id}/approve/"' in html


def test_it_hides_another_organisations_discrepancy_from_support(as_globex_support, acme_d):
    assert as_globex_support.get(f"/reconciliation/{acme_d.id}/").status_code == 404


def test_it_answers_404_for_an_unknown_discrepancy(as_admin):
    assert as_admin.get("/reconciliation/999999/").status_code == 404


# --- approve / dismiss ---------------------------------------------------------------------------


def test_support_approves_a_discrepancy_of_their_organisation(
    as_acme_support, acme_support, acme_d
):
    assert balance_of("acme", acme_d.sku, acme_d.location_code) == Decimal(10)  # ledger says 5
    response = as_acme_support.post(
        f"/reconciliation/{acme_d.id}/approve/", {"note": "counted"}, follow=True
    )
    assert response.redirect_chain == [(f"/reconciliation/{acme_d.id}/", 302)]
    acme_d.refresh_from_db()
    assert acme_d.status == "approved" and acme_d.resolved_by == acme_support
    assert acme_d.note == "counted"
    assert acme_d.balance_before == Decimal(10) and acme_d.balance_after == Decimal(5)
    assert balance_of("acme", acme_d.sku, acme_d.location_code) == Decimal(5)
    assert any(f"Discrepancy {acme_d.id} Approved" in m for m in messages_of(response))
    assert "Approve: set balance" not in text(response)  # no longer open


def test_it_refuses_to_approve_twice(as_admin, acme_d):
    as_admin.post(f"/reconciliation/{acme_d.id}/approve/")
    response = as_admin.post(f"/reconciliation/{acme_d.id}/approve/", follow=True)
    assert any("already approved" in m for m in messages_of(response))


def test_support_of_another_organisation_cannot_resolve(as_globex_support, acme_d):
    before = balance_of("acme", acme_d.sku, acme_d.location_code)
    assert as_globex_support.post(f"/reconciliation/{acme_d.id}/approve/").status_code == 404
    assert (
        as_globex_support.post(f"/reconciliation/{acme_d.id}/dismiss/", {"note": "x"}).status_code
        == 404
    )
    acme_d.refresh_from_db()
    assert acme_d.status == "open" and acme_d.resolved_by is None
    assert balance_of("acme", acme_d.sku, acme_d.location_code) == before


def test_it_requires_a_reason_to_dismiss(as_acme_support, acme_d):
    response = as_acme_support.post(
        f"/reconciliation/{acme_d.id}/dismiss/", {"note": "   "}, follow=True
    )
    assert response.redirect_chain == [(f"/reconciliation/{acme_d.id}/", 302)]
    assert any("a reason is required" in m for m in messages_of(response))
    acme_d.refresh_from_db()
    assert acme_d.status == "open"


def test_it_dismisses_with_a_reason(as_acme_support, acme_support, acme_d):
    before = balance_of("acme", acme_d.sku, acme_d.location_code)
    response = as_acme_support.post(
        f"/reconciliation/{acme_d.id}/dismiss/", {"note": "known transit stock"}, follow=True
    )
    assert any(f"Discrepancy {acme_d.id} dismissed." in m for m in messages_of(response))
    acme_d.refresh_from_db()
    assert acme_d.status == "dismissed" and acme_d.note == "known transit stock"
    assert acme_d.resolved_by == acme_support
    assert balance_of("acme", acme_d.sku, acme_d.location_code) == before  # nothing corrected


def test_it_answers_404_for_an_unknown_action(as_admin, acme_d):
    assert as_admin.post(f"/reconciliation/{acme_d.id}/delete/").status_code == 404
    acme_d.refresh_from_db()
    assert acme_d.status == "open"


def test_it_resolves_only_on_post(as_admin, acme_d):
    assert as_admin.get(f"/reconciliation/{acme_d.id}/approve/").status_code == 405
    assert as_admin.get("/reconciliation/approve/").status_code == 405
    assert as_admin.get("/reconciliation/run/").status_code == 405
    acme_d.refresh_from_db()
    assert acme_d.status == "open"


# --- bulk approve --------------------------------------------------------------------------------


def test_bulk_approve_approves_only_open_discrepancies_the_user_may_see(
    as_acme_support, acme_support, globex_d
):
    first, second, done = open_discrepancies("acme", 3, prefix="B")
    from reconciliation.services import discrepancy_dismiss

    discrepancy_dismiss(discrepancy_id=done.id, user=acme_support, reason="earlier")
    response = as_acme_support.post(
        "/reconciliation/approve/",
        {"ids": [first.id, second.id, done.id, globex_d.id, 999999, "x"], "note": "bulk"},
        follow=True,
    )
    assert response.redirect_chain == [("/reconciliation/", 302)]
    assert "Approved 2 discrepancies. 3 skipped (not open or not yours)." in messages_of(response)
    statuses = dict(
        Discrepancy.objects.filter(pk__in=[first.id, second.id, done.id, globex_d.id]).values_list(
            "pk", "status"
        )
    )
    assert statuses == {
        first.id: "approved",
        second.id: "approved",
        done.id: "dismissed",
        globex_d.id: "open",
    }
    first.refresh_from_db()
    assert first.note == "bulk" and first.resolved_by == acme_support


def test_bulk_approve_without_selection_says_so(as_acme_support, acme_d):
    response = as_acme_support.post("/reconciliation/approve/", {"ids": []}, follow=True)
    assert "Select at least one discrepancy to approve." in messages_of(response)
    acme_d.refresh_from_db()
    assert acme_d.status == "open"


def test_bulk_approve_returns_to_the_filtered_queue_but_never_off_site(as_admin, acme_d, globex_d):
    response = as_admin.post(
        "/reconciliation/approve/", {"ids": [acme_d.id], "next": "/reconciliation/?org=acme"}
    )
    assert response.status_code == 302 and response["Location"] == "/reconciliation/?org=acme"
    response = as_admin.post(
        "/reconciliation/approve/", {"ids": [globex_d.id], "next": "https://evil.example/"}
    )
    assert response.status_code == 302 and response["Location"] == "/reconciliation/"


# --- run now -------------------------------------------------------------------------------------


def test_support_starts_a_reconciliation_of_a_supported_organisation(
    as_acme_support, acme_support, acme, sync_jobs
):
    from tests.page_helpers import stock_keys

    stock_keys("acme", 1, prefix="N")
    response = as_acme_support.post("/reconciliation/run/", {"org": "acme", "mode": "full"})
    assert response.status_code == 200
    job = JobRun.objects.get()
    assert job.kind == "reconcile" and job.schema_name == "acme"
    assert job.requested_by == acme_support.username
    assert f'id="jobrun-{job.id}"' in text(response)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    run = ReconciliationRun.objects.get()
    assert run.organization == acme and run.mode == "full" and run.keys_checked == 1
    assert run.triggered_by == f"user:{acme_support.username}"
    # The support user may follow their job.
    status = as_acme_support.get(f"/jobs/{job.id}/")
    assert status.status_code == 200 and status["HX-Trigger"] == "job-finished"


def test_run_now_refuses_an_organisation_the_user_does_not_support(as_acme_support, sync_jobs):
    response = as_acme_support.post("/reconciliation/run/", {"org": "globex", "mode": "full"})
    assert response.status_code == 400
    assert "Choose one of your organisations" in text(response)
    assert as_acme_support.post("/reconciliation/run/", {"org": "nope"}).status_code == 400
    assert (
        as_acme_support.post("/reconciliation/run/", {"org": "acme", "mode": "bogus"}).status_code
        == 400
    )
    assert JobRun.objects.count() == 0 and ReconciliationRun.objects.count() == 0


def test_platform_admins_may_run_any_organisation(as_admin, globex, sync_jobs):
    response = as_admin.post("/reconciliation/run/", {"org": "globex", "mode": "incremental"})
    assert response.status_code == 200
    run = ReconciliationRun.objects.get()
    assert run.organization == globex and run.mode == "incremental"


# --- bounded filters (issue 16.12) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "query, field",
    [
        ("max=1e999999", "Size below"),  # a 500 (DataError: numeric field overflow) before
        ("min=1e999999", "Size at least"),
        ("min=-1", "Size at least"),
        ("max=0.0000001", "Size below"),
        ("max=9999999999999", "Size below"),
        ("sort=bogus", "Sort"),
        ("status=bogus", "Status"),
    ],
)
def test_it_answers_400_with_a_field_error_for_an_unbounded_filter(
    as_admin, acme_d, globex_d, query, field
):
    before = list(Discrepancy.objects.order_by("pk").values_list("pk", "status", "note"))
    runs = ReconciliationRun.objects.count()
    response = as_admin.get(f"/reconciliation/?{query}")
    assert response.status_code == 400
    assert '<p class="error" role="alert" id="q-' in text(response)
    assert f"{field}: " in text(response)
    assert list(Discrepancy.objects.order_by("pk").values_list("pk", "status", "note")) == before
    assert ReconciliationRun.objects.count() == runs and JobRun.objects.count() == 0


# --- queue basics (issue 16.9) -------------------------------------------------------------------


def test_every_row_names_the_item_its_unit_and_links_to_the_item_page(as_admin, acme_d):
    html = text(as_admin.get("/reconciliation/"))
    row = table_body(html, "discrepancies")
    assert acme_d.item_name and acme_d.unit == "g"
    assert (
        f'<a href="/orgs/acme/items/{acme_d.item_id}/" class="item-link">{acme_d.item_name}</a>'
        in row
    )
    assert "<td>g</td>" in row
    assert "ledger sum minus balance table" in html  # the sign of the difference explained
    assert 'id="select-all"' in html


def test_the_queue_sorts_by_size_age_organisation_and_status(
    as_admin, admin_user, acme_d, globex_d
):
    from reconciliation.services import discrepancy_dismiss

    [small] = open_discrepancies("acme", 1, prefix="S", by="1")
    discrepancy_dismiss(discrepancy_id=globex_d.id, user=admin_user, reason="known")
    base = "/reconciliation/?status=all&sort="
    assert queue_ids(as_admin.get(base + "size")) == [globex_d.id, acme_d.id, small.id]
    assert queue_ids(as_admin.get(base + "size_asc")) == [small.id, acme_d.id, globex_d.id]
    assert queue_ids(as_admin.get(base + "age")) == [acme_d.id, globex_d.id, small.id]
    assert queue_ids(as_admin.get(base + "newest")) == [small.id, globex_d.id, acme_d.id]
    assert queue_ids(as_admin.get(base + "org")) == [acme_d.id, small.id, globex_d.id]
    assert queue_ids(as_admin.get(base + "status")) == [globex_d.id, acme_d.id, small.id]
    # The pager keeps the sort.
    assert "sort=size_asc" in text(as_admin.get(base + "size_asc"))


def test_bulk_dismiss_needs_a_reason_and_writes_nothing_without_one(as_acme_support, acme):
    first, second = open_discrepancies("acme", 2, prefix="D")
    for note in ("", "   "):
        response = as_acme_support.post(
            "/reconciliation/approve/",
            {"ids": [first.id, second.id], "action": "dismiss", "note": note},
            follow=True,
        )
        assert response.redirect_chain == [("/reconciliation/", 302)]
        assert "Nothing dismissed: a reason is required to dismiss discrepancies." in messages_of(
            response
        )
        assert set(Discrepancy.objects.values_list("status", flat=True)) == {"open"}
        assert not Discrepancy.objects.exclude(note="").exists()


def test_bulk_dismiss_dismisses_the_selected_with_one_reason(
    as_acme_support, acme_support, globex_d
):
    first, second, left = open_discrepancies("acme", 3, prefix="D")
    response = as_acme_support.post(
        "/reconciliation/approve/",
        {"ids": [first.id, second.id, globex_d.id], "action": "dismiss", "note": "in transit"},
        follow=True,
    )
    assert "Dismissed 2 discrepancies. 1 skipped (not open or not yours)." in messages_of(response)
    rows = {
        d.pk: (d.status, d.note, d.resolved_by_id)
        for d in Discrepancy.objects.filter(pk__in=[first.id, second.id, left.id, globex_d.id])
    }
    assert rows == {
        first.id: ("dismissed", "in transit", acme_support.id),
        second.id: ("dismissed", "in transit", acme_support.id),
        left.id: ("open", "", None),
        globex_d.id: ("open", "", None),
    }
    assert balance_of("acme", first.sku, first.location_code) == Decimal(10)  # nothing corrected


def test_support_of_another_organisation_cannot_bulk_dismiss(as_globex_support, acme_d):
    response = as_globex_support.post(
        "/reconciliation/approve/",
        {"ids": [acme_d.id], "action": "dismiss", "note": "not mine"},
        follow=True,
    )
    assert "Dismissed 0 discrepancies. 1 skipped (not open or not yours)." in messages_of(response)
    acme_d.refresh_from_db()
    assert (acme_d.status, acme_d.note, acme_d.resolved_by) == ("open", "", None)


def test_bulk_refuses_an_unknown_action(as_admin, acme_d):
    response = as_admin.post("/reconciliation/approve/", {"ids": [acme_d.id], "action": "delete"})
    assert response.status_code == 400
    acme_d.refresh_from_db()
    assert acme_d.status == "open"


# --- honest counts and the page refreshing in place (issue 16.8) ----------------------------------


def test_run_now_reports_new_and_still_open_apart(as_acme_support, acme, sync_jobs):
    from django.db import connection
    from django_tenants.utils import schema_context

    from tests.page_helpers import stock_keys

    open_discrepancies("acme", 3, prefix="H")  # three already open
    stock_keys("acme", 1, prefix="J")
    with schema_context("acme"), connection.cursor() as cur:
        cur.execute(
            "UPDATE inventory_balances b SET qty_canonical = qty_canonical + 5 "
            "FROM inventory_items i WHERE i.id = b.item_id AND i.sku = 'J-0000'"
        )
    response = as_acme_support.post("/reconciliation/run/", {"org": "acme", "mode": "full"})
    assert response.status_code == 200
    job = JobRun.objects.get()
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert "1 new, 3 still open" in job.message
    assert (job.result["opened"], job.result["still_open"]) == (1, 3)
    run = ReconciliationRun.objects.latest("started_at")
    assert (run.opened, run.still_open) == (1, 3)
    runs = table_body(text(as_acme_support.get("/reconciliation/")), "runs")
    assert f'<tr data-run="{run.id}">' in runs
    assert '<td class="num new">1</td><td class="num still-open">3</td>' in runs


def test_the_queue_refreshes_itself_when_a_job_it_follows_finishes(as_acme_support, acme_d):
    html = text(as_acme_support.get("/reconciliation/?status=open"))
    live = re.search(r'<div id="queue-live"([^>]*)>', html)
    assert live, "no live region"
    attrs = live.group(1)
    assert 'hx-trigger="job-finished from:body"' in attrs
    assert 'hx-get="/reconciliation/?status=open"' in attrs and 'hx-select="#queue-live"' in attrs
    # The discrepancy list and the runs are inside the refreshed region.
    region = html[live.start() :]
    assert '<table id="discrepancies">' in region and '<table id="runs">' in region
