"""Home sends each kind of user to their page; the organisations list; the fleet page (admins only)
with its attention filter and sorting."""

from __future__ import annotations

import re

import pytest

from tests.factories import make_user
from tests.page_helpers import assert_login_redirect, client_for, open_discrepancies, text

pytestmark = pytest.mark.django_db


# --- home ----------------------------------------------------------------------------------------


def test_it_sends_anonymous_visitors_to_the_login_page(anon):
    assert_login_redirect(anon.get("/"), "/")


def test_it_sends_platform_admins_to_the_fleet(as_admin):
    response = as_admin.get("/")
    assert response.status_code == 302 and response["Location"] == "/fleet/"


def test_it_sends_support_only_staff_to_the_reconciliation_queue(as_acme_support):
    response = as_acme_support.get("/")
    assert response.status_code == 302 and response["Location"] == "/reconciliation/"


def test_it_sends_owners_to_their_organisations_balances(as_acme_owner, as_globex_owner):
    response = as_acme_owner.get("/")
    assert response.status_code == 302 and response["Location"] == "/orgs/acme/balances/"
    response = as_globex_owner.get("/")
    assert response.status_code == 302 and response["Location"] == "/orgs/globex/balances/"


def test_it_sends_an_owner_who_also_supports_another_org_to_their_balances(acme, globex):
    from tenants.services import membership_grant

    user = make_user("mixed", org=globex, role="owner")
    membership_grant(user=user, organization=acme, role="support")
    response = client_for(user).get("/")
    assert response.status_code == 302 and response["Location"] == "/orgs/globex/balances/"


def test_it_shows_a_user_without_organisation_the_empty_home(db):
    response = client_for(make_user("nobody")).get("/")
    assert response.status_code == 200
    assert "You have no organisation yet" in text(response)


# --- my organisations ----------------------------------------------------------------------------


def test_it_lists_only_the_owners_organisations(as_acme_owner):
    response = as_acme_owner.get("/orgs/")
    assert response.status_code == 200
    html = text(response)
    assert "(acme)" in html and "(globex)" not in html
    assert 'href="/orgs/acme/balances/"' in html and 'href="/orgs/acme/api-keys/"' in html
    assert "/runbook/" not in html


def test_it_lists_supported_organisations_with_a_queue_link(as_globex_support):
    html = text(as_globex_support.get("/orgs/"))
    assert "(globex)" in html and "(acme)" not in html
    assert 'href="/reconciliation/?org=globex"' in html
    assert "/balances/" not in html  # support is not ownership


def test_it_lists_every_organisation_for_platform_admins(as_admin):
    html = text(as_admin.get("/orgs/"))
    assert 'href="/orgs/acme/runbook/"' in html and 'href="/orgs/globex/runbook/"' in html
    assert "platform admin" in html


def test_it_asks_anonymous_visitors_to_log_in_for_the_organisation_list(anon):
    assert_login_redirect(anon.get("/orgs/"), "/orgs/")


# --- fleet ---------------------------------------------------------------------------------------


def fleet_slugs(response) -> list[str]:
    return re.findall(r'<tr data-org="([^"]+)">', text(response))


def test_it_shows_every_organisation_in_the_fleet(as_admin):
    response = as_admin.get("/fleet/")
    assert response.status_code == 200
    assert fleet_slugs(response) == ["acme", "globex"]
    assert "Acme Corporation" in text(response) and "Globex Corporation" in text(response)


@pytest.mark.parametrize("who", ["as_acme_owner", "as_acme_support"])
def test_it_refuses_the_fleet_to_anyone_but_platform_admins(who, request):
    assert request.getfixturevalue(who).get("/fleet/").status_code == 403


def test_it_asks_anonymous_visitors_to_log_in_for_the_fleet(anon):
    assert_login_redirect(anon.get("/fleet/"), "/fleet/")


def test_it_does_not_accept_posts_on_the_fleet(as_admin):
    assert as_admin.post("/fleet/").status_code == 405


def test_it_filters_the_fleet_to_organisations_needing_attention(as_admin, acme):
    response = as_admin.get("/fleet/?attention=1")
    assert fleet_slugs(response) == []
    assert "No organisations need attention." in text(response)

    [d] = open_discrepancies("acme", 1, prefix="F")
    assert d.status == "open" and d.abs_difference >= 1

    response = as_admin.get("/fleet/?attention=1")
    assert fleet_slugs(response) == ["acme"]
    html = text(response)
    assert "1 open discrepancies" in html
    assert re.search(r'name="attention" value="1"\s+checked', html)
    # Without the filter both are listed again.
    assert fleet_slugs(as_admin.get("/fleet/")) == ["acme", "globex"]


def test_it_sorts_the_fleet(as_admin, globex):
    open_discrepancies("globex", 2, prefix="S")
    by_discrepancies = as_admin.get("/fleet/?sort=discrepancies")
    assert by_discrepancies.status_code == 200
    assert fleet_slugs(by_discrepancies) == ["globex", "acme"]
    assert 'name="sort" value="discrepancies"' in text(by_discrepancies)
    assert fleet_slugs(as_admin.get("/fleet/?sort=attention")) == ["globex", "acme"]
    assert fleet_slugs(as_admin.get("/fleet/?sort=slug")) == ["acme", "globex"]
    # An unknown sort falls back to the slug order instead of failing.
    unknown = as_admin.get("/fleet/?sort=__class__")
    assert unknown.status_code == 200 and fleet_slugs(unknown) == ["acme", "globex"]
    assert 'name="sort" value="slug"' in text(unknown)


def test_the_fleet_shows_jobs_run_from_the_command_line(as_admin, acme):
    from django.core.management import call_command

    row = _fleet_row(text(as_admin.get("/fleet/")), "acme")
    assert row.count("never") == 2 and "not run" in row  # backfill, reconciliation; validation
    call_command("backfill_balances", "--schema", "acme")
    call_command("validate_migration", "--schema", "acme")
    row = _fleet_row(text(as_admin.get("/fleet/")), "acme")
    assert "succeeded ·" in row and "passed" in row and row.count("never") == 1


def test_the_fleet_shows_a_dead_backfill_as_interrupted_without_polling(as_admin, acme):
    from django.utils import timezone

    from operations.jobs import job_run_create
    from operations.models import JobRun

    job = job_run_create(kind="backfill", schema_name="acme")
    now = timezone.now()
    JobRun.objects.filter(pk=job.pk).update(
        status="running", started_at=now, heartbeat_at=now, worker="gone-worker"
    )
    row = _fleet_row(text(as_admin.get("/fleet/")), "acme")
    job.refresh_from_db()
    assert job.status == "interrupted" and "gone-worker" in job.error
    assert "interrupted ·" in row and "running" not in row


def test_the_fleet_flags_objects_recorded_as_applied_but_missing(as_admin, acme):
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("DROP TRIGGER inventory_ledger_balance_trigger ON acme.inventory_ledger")
        cur.execute("DROP FUNCTION acme.update_inventory_balance()")
    html = text(as_admin.get("/fleet/?attention=1"))
    assert fleet_slugs_of(html) == ["acme"]
    row = _fleet_row(html, "acme")
    assert (
        "recorded as applied but missing: inventory_ledger_balance_trigger, "
        "update_inventory_balance() (run repair_balances --schema acme)" in row
    )
    assert 'href="/orgs/acme/runbook/#step-migrate">repair</a>' in row
    assert "0 pending" not in row and "applied" in row  # django_migrations alone says applied


def fleet_slugs_of(html: str) -> list[str]:
    return re.findall(r'<tr data-org="([^"]+)">', html)


def _fleet_row(html: str, slug: str) -> str:
    start = html.index(f'<tr data-org="{slug}">')
    return html[start : html.index("</tr>", start)]
