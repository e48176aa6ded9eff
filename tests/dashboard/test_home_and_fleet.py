"""Home sends each kind of user to their page; the organisations list; the fleet page (admins only)
with its counts, search, filters, sorting and paging at a constant number of queries; organisations
created, deactivated and reactivated from it."""

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


def test_it_sends_owners_to_their_organisations_home(as_acme_owner, as_globex_owner):
    response = as_acme_owner.get("/")
    assert response.status_code == 302 and response["Location"] == "/orgs/acme/"
    response = as_globex_owner.get("/")
    assert response.status_code == 302 and response["Location"] == "/orgs/globex/"


def test_it_sends_an_owner_who_also_supports_another_org_to_their_home(acme, globex):
    from tenants.services import membership_grant

    user = make_user("mixed", org=globex, role="owner")
    membership_grant(user=user, organization=acme, role="support")
    response = client_for(user).get("/")
    assert response.status_code == 302 and response["Location"] == "/orgs/globex/"


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
    assert 'data-state="attention" aria-current="true">1 need attention</a>' in html
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


# --- the fleet at scale (issue 11.2) -------------------------------------------------------------


def _bulk_orgs(n: int, prefix: str = "fq") -> list:
    """Organisation rows without schemas (bulk_create skips the schema): the page reads every
    schema's migrations and catalog in a fixed number of queries, present or not."""
    from tenants.models import Organization

    return Organization.objects.bulk_create(
        Organization(
            slug=f"{prefix}-{i:03d}",
            name=f"Fleet {prefix.upper()} {i:03d}",
            schema_name=f"{prefix}_{i:03d}",
        )
        for i in range(n)
    )


def test_the_fleet_page_makes_the_same_queries_for_10_and_60_organisations(as_admin, acme, globex):
    from tests.page_helpers import assert_same, queries_for

    _bulk_orgs(8, "fa")  # 10 with acme and globex
    small = queries_for(as_admin, "/fleet/")
    _bulk_orgs(50, "fb")  # 60
    large = queries_for(as_admin, "/fleet/")
    assert_same(small, large, budget=18)
    html = text(as_admin.get("/fleet/"))
    assert ">60 need attention</a>" not in html  # acme and globex are ok
    assert (
        'data-state="ok">2 ok</a>' in html
        and 'data-state="pending">58 pending migrations</a>' in html
    )
    assert len(fleet_slugs_of(html)) == 50 and "page 1 of 2 (60 organisations)" in html
    second = text(as_admin.get("/fleet/?page=2"))
    # acme, fa-000..007, fb-000..049, globex: the second page holds the last ten.
    assert fleet_slugs_of(second) == [f"fb-{i:03d}" for i in range(41, 50)] + ["globex"]


def test_the_fleet_page_queries_do_not_grow_past_one_batch_of_schemas(as_admin, acme, globex):
    """Past 100 schemas the pending migrations come from the health snapshot (one query), not one
    UNION ALL per 100 schemas: 250 organisations cost no more than 10."""
    from django.db import connection

    from tests.page_helpers import queries_for

    _bulk_orgs(8, "fa")
    small = queries_for(as_admin, "/fleet/")
    # 240 more, each with a schema holding an empty django_migrations (what the page reads).
    with connection.cursor() as cursor:
        for org in _bulk_orgs(240, "fc"):
            cursor.execute(
                f'CREATE SCHEMA "{org.schema_name}"; CREATE TABLE "{org.schema_name}".'
                "django_migrations (LIKE public.django_migrations)"
            )
    as_admin.get("/fleet/")  # the first look computes the snapshot (the worker does, each minute)
    large = queries_for(as_admin, "/fleet/")
    assert large[0] <= small[0] <= 18, (small[0], large[0])
    html = text(as_admin.get("/fleet/"))
    assert 'data-state="pending">248 pending migrations</a>' in html


def test_it_searches_the_fleet_by_slug_or_name(as_admin, acme, globex):
    _bulk_orgs(3, "fs")
    assert fleet_slugs(as_admin.get("/fleet/?q=GLOB")) == ["globex"]
    assert fleet_slugs(as_admin.get("/fleet/?q=fleet+fs+001")) == ["fs-001"]  # by name
    # The sort links keep the search, URL-encoded.
    assert 'href="?q=glob%26sort%3Dx&amp;state=&sort=slug&dir=desc"' in text(
        as_admin.get("/fleet/?q=glob%26sort%3Dx")
    )
    html = text(as_admin.get("/fleet/?q=nothing-like-it"))
    assert fleet_slugs_of(html) == [] and "No organisations match." in html


def test_it_filters_the_fleet_by_each_state(as_admin, acme, globex):
    from operations.models import JobRun

    _bulk_orgs(2, "ff")
    open_discrepancies("globex", 1, prefix="Q")
    JobRun.objects.create(
        kind="validate", schema_name="acme", status="succeeded", result={"ok": False}
    )
    expected = {
        "ok": [],
        "attention": ["acme", "ff-000", "ff-001", "globex"],
        "pending": ["ff-000", "ff-001"],
        "validation_failed": ["acme"],
        "discrepancies": ["globex"],
        "backup_old": ["acme", "ff-000", "ff-001", "globex"],  # no backup at all
        "inactive": [],
    }
    for state, slugs in expected.items():
        assert fleet_slugs(as_admin.get(f"/fleet/?state={state}")) == slugs, state
    html = text(as_admin.get("/fleet/"))
    assert 'data-state="validation_failed">1 validation failed</a>' in html
    assert 'data-state="discrepancies">1 open discrepancies</a>' in html
    # An unknown state shows every organisation.
    assert len(fleet_slugs(as_admin.get("/fleet/?state=__all__"))) == 4


@pytest.mark.parametrize(
    "sort, first",
    [
        ("slug", "acme"),
        ("name", "acme"),
        ("pending", "fo-000"),
        ("balance", "fo-000"),
        ("validation", "acme"),
        ("backfill", "acme"),
        ("reconciled", "acme"),
        ("discrepancies", "globex"),
        ("attention", "fo-000"),
    ],
)
def test_it_sorts_the_fleet_on_every_column_both_ways(as_admin, acme, globex, sort, first):
    _bulk_orgs(1, "fo")
    open_discrepancies("globex", 1, prefix="Z")
    up = fleet_slugs(as_admin.get(f"/fleet/?sort={sort}"))
    down = fleet_slugs(as_admin.get(f"/fleet/?sort={sort}&dir=desc"))
    assert sorted(up) == ["acme", "fo-000", "globex"] and up[0] == first
    assert down == list(reversed(up))


# --- organisations from the page (issue 11.3) -----------------------------------------------------


def test_it_creates_an_organisation_with_its_first_owner_from_the_fleet(as_admin):
    from django.contrib.auth import get_user_model

    from tenants.models import Domain, Membership, Organization

    response = as_admin.post(
        "/fleet/orgs/", {"slug": "pageco", "name": "Page Co", "owner_email": "Boss@Page.example"}
    )
    assert response.status_code == 302 and response["Location"] == "/orgs/pageco/runbook/"
    org = Organization.objects.get(slug="pageco")
    assert org.name == "Page Co" and org.schema_name == "pageco" and org.is_active
    assert Domain.objects.filter(tenant=org, is_primary=True).exists()
    owner = get_user_model().objects.get(email="boss@page.example")
    assert not owner.has_usable_password()
    assert Membership.objects.get(organization=org).user == owner
    assert Membership.objects.get(organization=org).role == "owner"


def test_it_gives_an_existing_user_the_new_organisation(as_admin, acme_owner):
    from tenants.models import Membership

    acme_owner.email = "owner@acme.example"
    acme_owner.save()
    response = as_admin.post(
        "/fleet/orgs/", {"slug": "second", "name": "Second", "owner_email": "OWNER@acme.example"}
    )
    assert response.status_code == 302
    assert Membership.objects.get(organization__slug="second").user == acme_owner


@pytest.mark.parametrize(
    "data, status",
    [
        ({"slug": "acme", "name": "Again", "owner_email": "a@b.example"}, 409),
        ({"slug": "Bad Slug!", "name": "X", "owner_email": "a@b.example"}, 400),
        ({"slug": "www", "name": "X", "owner_email": "a@b.example"}, 400),
        ({"slug": "okslug", "name": "X", "owner_email": "not-an-email"}, 400),
        ({"slug": "okslug", "name": "", "owner_email": "a@b.example"}, 400),
    ],
)
def test_it_refuses_a_bad_organisation_and_writes_nothing(as_admin, acme, data, status):
    from django.contrib.auth import get_user_model

    from tenants.models import Membership, Organization

    orgs, users, members = (
        Organization.objects.count(),
        get_user_model().objects.count(),
        Membership.objects.count(),
    )
    response = as_admin.post("/fleet/orgs/", data, HTTP_HX_REQUEST="true")
    assert response.status_code == status
    assert Organization.objects.count() == orgs and get_user_model().objects.count() == users
    assert Membership.objects.count() == members
    assert Organization.objects.get(slug="acme").name == "Acme Corporation"


def test_it_deactivates_and_reactivates_with_the_slug_typed(as_admin, globex):
    from tenants.models import Organization

    wrong = as_admin.post(
        "/fleet/orgs/globex/deactivate/", {"confirm_slug": "acme"}, HTTP_HX_REQUEST="true"
    )
    assert (
        wrong.status_code == 422
        and "Type the organisation's slug (globex)" in wrong.content.decode()
    )
    assert Organization.objects.get(slug="globex").is_active
    ok = as_admin.post("/fleet/orgs/globex/deactivate/", {"confirm_slug": "globex"})
    assert ok.status_code == 302 and not Organization.objects.get(slug="globex").is_active
    assert fleet_slugs(as_admin.get("/fleet/?state=inactive")) == ["globex"]
    back = as_admin.post("/fleet/orgs/globex/reactivate/", {"confirm_slug": "globex"})
    assert back.status_code == 302 and Organization.objects.get(slug="globex").is_active
    assert (
        as_admin.post("/fleet/orgs/globex/delete/", {"confirm_slug": "globex"}).status_code == 404
    )
    assert (
        as_admin.post("/fleet/orgs/public/deactivate/", {"confirm_slug": "public"}).status_code
        == 404
    )


@pytest.mark.parametrize("who", ["as_acme_owner", "as_acme_support"])
def test_it_refuses_organisation_and_fleet_run_actions_to_non_admins(who, request, globex):
    from dashboard.models import FleetRun
    from tenants.models import Organization

    client = request.getfixturevalue(who)
    assert (
        client.post(
            "/fleet/orgs/", {"slug": "sneaky", "name": "S", "owner_email": "s@s.example"}
        ).status_code
        == 403
    )
    assert (
        client.post("/fleet/orgs/globex/deactivate/", {"confirm_slug": "globex"}).status_code == 403
    )
    assert client.post("/fleet/runs/", {"operation": "validate", "parallel": 1}).status_code == 403
    assert not Organization.objects.filter(slug="sneaky").exists()
    assert Organization.objects.get(slug="globex").is_active and not FleetRun.objects.exists()


# --- fleet runs from the page (issue 11.1) --------------------------------------------------------


def test_it_starts_and_follows_a_fleet_run_from_the_page(as_admin, acme, globex):
    from dashboard.models import FleetRun
    from operations.registry import job_run_registered

    response = as_admin.post(
        "/fleet/runs/", {"operation": "validate", "only": "", "org": "", "parallel": 1}
    )
    run = FleetRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/fleet/runs/{run.pk}/"
    page = text(as_admin.get(f"/fleet/runs/{run.pk}/"))
    assert 'data-org="acme" data-state="running"' in page
    assert 'data-org="globex" data-state="queued"' in page and 'hx-trigger="every 2s"' in page
    job_run_registered(run.items.get(organization=acme).job_run_id)
    fragment = as_admin.get(f"/fleet/runs/{run.pk}/", HTTP_HX_REQUEST="true")
    html = fragment.content.decode()
    assert fragment.status_code == 200 and "<html" not in html
    assert (
        'data-org="acme" data-state="done"' in html
        and 'data-org="globex" data-state="running"' in html
    )
    assert "1 done · 0 failed · 1 running · 0 waiting · 50%" in html
    assert as_admin.post(f"/fleet/runs/{run.pk}/pause/").status_code == 302
    assert FleetRun.objects.get().status == "paused"
    assert as_admin.post(f"/fleet/runs/{run.pk}/pause/", HTTP_HX_REQUEST="true").status_code == 409
    assert as_admin.post(f"/fleet/runs/{run.pk}/explode/").status_code == 404
    assert as_admin.post(f"/fleet/runs/{run.pk}/cancel/").status_code == 302
    assert FleetRun.objects.get().status == "cancelled"
    fleet = text(as_admin.get("/fleet/"))
    assert (
        f'href="/fleet/runs/{run.pk}/">#{run.pk} validate</a> · cancelled · 1 done, 0 failed, 1 waiting'
        in fleet
    )


def test_it_lists_a_failed_org_with_its_message_and_retries_it_alone(as_admin, acme, globex):
    from dashboard.fleet_runs import fleet_run_advance, fleet_run_start
    from operations.models import JobRun
    from operations.registry import job_run_registered

    run = fleet_run_start(operation="validate", orgs=[acme, globex], parallel=2)
    items = {i.organization.slug: i for i in run.items.select_related("organization")}
    job_run_registered(items["acme"].job_run_id)
    JobRun.objects.filter(pk=items["globex"].job_run_id).update(
        status="failed", error="Boom: disk full"
    )
    fleet_run_advance(run.pk)
    html = text(as_admin.get(f"/fleet/runs/{run.pk}/"))
    assert '<li data-org="globex">globex: <span class="error">Boom: disk full</span>' in html
    retried = as_admin.post(f"/fleet/runs/{run.pk}/retry/", {"item": items["globex"].pk})
    assert retried.status_code == 302
    assert [j.schema_name for j in JobRun.objects.filter(kind="validate", status="queued")] == [
        "globex"
    ]
    assert JobRun.objects.filter(kind="validate", schema_name="acme").count() == 1


def test_it_refuses_a_bad_fleet_run_start_and_writes_nothing(as_admin):
    from dashboard.models import FleetRun

    for data in (
        {"operation": "drop", "parallel": 1},
        {"operation": "validate", "parallel": 0},
        {"operation": "validate", "parallel": 1, "org": "nope"},
    ):
        assert as_admin.post("/fleet/runs/", data).status_code == 400, data
    assert not FleetRun.objects.exists()
