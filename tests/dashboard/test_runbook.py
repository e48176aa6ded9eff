"""An organisation's runbook (platform admins only): its steps, the jobs its buttons start, the
job status partial, and the typed-slug rollback."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection

from operations.jobs import job_run_create
from operations.models import BackupRecord, JobRun
from tests.inventory.helpers import balance_mismatches, make_catalog
from tests.page_helpers import assert_login_redirect, messages_of, post, text

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


# --- the page ------------------------------------------------------------------------------------


def test_it_shows_the_runbook_steps_to_platform_admins(as_admin):
    response = as_admin.get("/orgs/acme/runbook/")
    assert response.status_code == 200
    html = text(response)
    assert "Migration runbook: Acme Corporation" in html
    for key in ("backup", "migrate", "backfill", "validate", "health", "schedules"):
        assert f'id="step-{key}"' in html
    # Migrations are applied and the balance trigger is live in the test tenants.
    assert 'id="step-migrate" data-done="true"' in html
    assert 'id="step-health" data-done="true"' in html
    for kind in ("backup", "migrate", "backfill", "validate"):
        assert f'action="/orgs/acme/runbook/jobs/{kind}/"' in html
    assert 'action="/orgs/acme/runbook/rollback/"' in html


def test_it_returns_only_the_steps_to_htmx(as_admin):
    response = as_admin.get("/orgs/acme/runbook/", **HX)
    html = text(response)
    assert response.status_code == 200
    assert '<ol class="steps">' in html and "<html" not in html and "Rollback" not in html


def test_it_lists_the_organisations_recent_jobs_only(as_admin):
    job_run_create(kind="validate", schema_name="acme", requested_by="x")
    job_run_create(kind="backfill", schema_name="globex", requested_by="x")
    html = text(as_admin.get("/orgs/acme/runbook/"))
    assert "validate · queued" in html and "backfill · queued" not in html


def test_it_answers_404_for_an_unknown_organisation(as_admin):
    assert as_admin.get("/orgs/nope/runbook/").status_code == 404
    assert as_admin.post("/orgs/nope/runbook/jobs/validate/").status_code == 404
    assert (
        as_admin.post("/orgs/nope/runbook/rollback/", {"confirm_slug": "nope"}).status_code == 404
    )
    assert JobRun.objects.count() == 0


def test_it_does_not_serve_the_public_schema_as_an_organisation(as_admin):
    assert as_admin.get("/orgs/public/runbook/").status_code == 404


@pytest.mark.parametrize("who", ["as_acme_owner", "as_acme_support"])
def test_it_refuses_the_runbook_and_its_jobs_to_non_admins(who, request, sync_jobs):
    client = request.getfixturevalue(who)
    assert client.get("/orgs/acme/runbook/").status_code == 403
    assert client.post("/orgs/acme/runbook/jobs/validate/").status_code == 403
    assert client.post("/orgs/acme/runbook/rollback/", {"confirm_slug": "acme"}).status_code == 403
    assert JobRun.objects.count() == 0


def test_it_asks_anonymous_visitors_to_log_in_for_the_runbook(anon):
    assert_login_redirect(anon.get("/orgs/acme/runbook/"), "/orgs/acme/runbook/")
    response = anon.post("/orgs/acme/runbook/jobs/validate/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert JobRun.objects.count() == 0


# --- jobs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["backup", "migrate", "repair", "backfill", "validate"])
def test_it_starts_each_runbook_job(kind, as_admin, admin_user, sync_jobs, backup_dir):
    response = as_admin.post(f"/orgs/acme/runbook/jobs/{kind}/", **HX)
    assert response.status_code == 200
    job = JobRun.objects.get()
    assert job.kind == kind and job.requested_by == admin_user.username
    html = text(response)
    assert f'id="jobrun-{job.id}"' in html and f"{kind}:" in html and "<html" not in html
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.finished_at is not None
    if kind == "backup":
        record = BackupRecord.objects.get()
        assert record.status == "ok" and (backup_dir / record.file_name).exists()
    else:
        assert job.schema_name == "acme"
    if kind == "migrate":
        assert job.result["pending"] == []
    if kind == "validate":
        assert job.result["ok"] is True


def test_it_redirects_to_the_runbook_with_a_message_without_htmx(as_admin, sync_jobs):
    response = as_admin.post("/orgs/acme/runbook/jobs/validate/", follow=True)
    job = JobRun.objects.get()
    assert response.redirect_chain == [("/orgs/acme/runbook/", 302)]
    assert f"Started validate (job {job.id})." in messages_of(response)


def test_it_answers_409_and_queues_nothing_when_the_job_is_already_under_way(as_admin):
    from django_q.models import OrmQ

    first = as_admin.post("/orgs/acme/runbook/jobs/validate/", **HX)  # queued, no worker here
    assert first.status_code == 200
    [job] = JobRun.objects.all()
    assert job.status == "queued" and job.task_id and OrmQ.objects.count() == 1

    second = as_admin.post("/orgs/acme/runbook/jobs/validate/", **HX)
    assert second.status_code == 409
    html = text(second)
    assert f'id="jobrun-{job.id}"' in html  # the page follows the run already under way
    assert f"A validate job for acme is already queued (job {job.id}" in html
    assert list(JobRun.objects.values_list("id", "status")) == [(job.id, "queued")]
    assert OrmQ.objects.count() == 1

    # Without htmx: back to the runbook, saying why nothing started (not "Started").
    response = as_admin.post("/orgs/acme/runbook/jobs/validate/", follow=True)
    assert response.redirect_chain == [("/orgs/acme/runbook/", 302)]
    [message] = messages_of(response)
    assert message.startswith(f"A validate job for acme is already queued (job {job.id}")
    assert JobRun.objects.count() == 1 and OrmQ.objects.count() == 1


def _dead_running_run(kind: str, schema: str) -> JobRun:
    """A run marked running whose worker is gone: nobody holds its lock, nobody polls it."""
    from django.utils import timezone

    job = job_run_create(kind=kind, schema_name=schema)
    now = timezone.now()
    JobRun.objects.filter(pk=job.pk).update(
        status="running", started_at=now, heartbeat_at=now, worker="gone-worker"
    )
    return job


def test_the_runbook_shows_a_dead_run_as_interrupted_without_polling(as_admin):
    job = _dead_running_run("backfill", "acme")
    html = text(as_admin.get("/orgs/acme/runbook/"))
    job.refresh_from_db()
    assert job.status == "interrupted" and "gone-worker" in job.error
    assert "backfill · interrupted" in html and "backfill · running" not in html


def test_the_backfill_job_repairs_the_balances(as_admin, sync_jobs, acme):
    from django_tenants.utils import schema_context

    with schema_context("acme"):
        items, locations, _ = make_catalog(prefix="R")
    post(
        "acme",
        [{"item": items[0].sku, "location": locations[0].code, "qty": "5", "kind": "receipt"}],
    )
    with connection.cursor() as cur:
        cur.execute("UPDATE acme.inventory_balances SET qty_canonical = 99")
    assert balance_mismatches("acme") != []
    assert as_admin.post("/orgs/acme/runbook/jobs/backfill/", **HX).status_code == 200
    job = JobRun.objects.get()
    assert job.status == "succeeded" and job.result["ledger_rows"] == 1
    assert balance_mismatches("acme") == []


def test_it_refuses_an_unknown_job_kind(as_admin, sync_jobs):
    response = as_admin.post("/orgs/acme/runbook/jobs/rollback/")
    assert response.status_code == 400  # rollback has its own confirmed form
    assert as_admin.post("/orgs/acme/runbook/jobs/dropall/").status_code == 400
    assert JobRun.objects.count() == 0


def test_it_only_starts_jobs_on_post(as_admin):
    assert as_admin.get("/orgs/acme/runbook/jobs/validate/").status_code == 405
    assert as_admin.get("/orgs/acme/runbook/rollback/").status_code == 405
    assert JobRun.objects.count() == 0


# --- job status partial --------------------------------------------------------------------------


def test_it_reports_a_finished_job_and_tells_the_page(as_admin, sync_jobs):
    as_admin.post("/orgs/acme/runbook/jobs/validate/", **HX)
    job = JobRun.objects.get()
    response = as_admin.get(f"/jobs/{job.id}/")
    assert response.status_code == 200
    assert response["HX-Trigger"] == "job-finished"
    html = text(response)
    assert 'data-status="succeeded"' in html and "validate: succeeded" in html
    assert "hx-get" not in html  # stops polling


def test_it_reports_a_failed_job_as_finished(as_admin):
    job = job_run_create(kind="validate", schema_name="acme")
    JobRun.objects.filter(pk=job.pk).update(status="failed", error="boom")
    response = as_admin.get(f"/jobs/{job.id}/")
    assert response["HX-Trigger"] == "job-finished" and "boom" in text(response)


def test_it_keeps_polling_a_queued_job(as_admin):
    job = job_run_create(kind="backfill", schema_name="acme")
    response = as_admin.get(f"/jobs/{job.id}/")
    assert response.status_code == 200
    assert "HX-Trigger" not in response
    assert f'hx-get="/jobs/{job.id}/"' in text(response) and 'data-status="queued"' in text(
        response
    )


def test_it_answers_404_for_an_unknown_job(as_admin):
    assert as_admin.get("/jobs/999999/").status_code == 404


def test_support_staff_follow_only_reconciliations_of_their_organisations(as_acme_support):
    backfill = job_run_create(kind="backfill", schema_name="acme")
    own = job_run_create(kind="reconcile", schema_name="acme")
    other = job_run_create(kind="reconcile", schema_name="globex")
    backup = job_run_create(kind="backup")
    assert as_acme_support.get(f"/jobs/{backfill.id}/").status_code == 404
    assert as_acme_support.get(f"/jobs/{other.id}/").status_code == 404
    assert as_acme_support.get(f"/jobs/{backup.id}/").status_code == 404
    response = as_acme_support.get(f"/jobs/{own.id}/")
    assert response.status_code == 200 and f'id="jobrun-{own.id}"' in text(response)


def test_owners_cannot_follow_jobs(as_acme_owner):
    job = job_run_create(kind="reconcile", schema_name="acme")
    assert as_acme_owner.get(f"/jobs/{job.id}/").status_code == 404


def test_it_asks_anonymous_visitors_to_log_in_for_a_job(anon):
    job = job_run_create(kind="validate", schema_name="acme")
    assert_login_redirect(anon.get(f"/jobs/{job.id}/"), f"/jobs/{job.id}/")


# --- rollback ------------------------------------------------------------------------------------


def _balance_table(schema: str):
    with connection.cursor() as cur:
        cur.execute(f"SELECT to_regclass('{schema}.inventory_balances')")
        return cur.fetchone()[0]


def test_it_refuses_a_rollback_without_the_typed_slug(as_admin, sync_jobs):
    response = as_admin.post("/orgs/acme/runbook/rollback/", {"confirm_slug": "globex"}, **HX)
    assert response.status_code == 422
    assert "Type the organisation's slug (acme) to confirm the rollback." in text(response)
    response = as_admin.post("/orgs/acme/runbook/rollback/", {}, **HX)
    assert response.status_code == 422
    response = as_admin.post("/orgs/acme/runbook/rollback/", {"confirm_slug": "ACME"}, follow=True)
    assert response.redirect_chain == [("/orgs/acme/runbook/", 302)]
    assert any("to confirm the rollback" in m for m in messages_of(response))
    assert JobRun.objects.count() == 0
    assert _balance_table("acme") is not None


def test_it_rolls_back_with_the_typed_slug(as_admin, admin_user, sync_jobs, acme):
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # DDL refuses pending deferred FK checks
    try:
        response = as_admin.post("/orgs/acme/runbook/rollback/", {"confirm_slug": " acme "}, **HX)
        assert response.status_code == 200
        job = JobRun.objects.get()
        assert job.kind == "rollback" and job.schema_name == "acme"
        assert job.requested_by == admin_user.username
        assert f'id="jobrun-{job.id}"' in text(response)
        job.refresh_from_db()
        assert job.status == "succeeded", job.error
        assert _balance_table("acme") is None
        assert _balance_table("globex") is not None  # only the named organisation
        # The fleet now flags acme.
        fleet = text(as_admin.get("/fleet/?attention=1"))
        assert 'data-org="acme"' in fleet and 'data-org="globex"' not in fleet
        assert (
            "recorded as applied but missing: inventory_balances, inventory_ledger_balance_trigger, "
            "update_inventory_balance() (run repair_balances --schema acme)" in fleet
        )
        # Only the guide's three objects: the ledger's append-only guard and txid stay.
        with connection.cursor() as cur:
            cur.execute(
                """SELECT array_agg(t.tgname::text ORDER BY t.tgname),
                          (SELECT count(*) FROM information_schema.columns WHERE table_schema = 'acme'
                              AND table_name = 'inventory_ledger' AND column_name = 'txid')
                     FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                     JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'acme' AND c.relname = 'inventory_ledger' AND NOT t.tgisinternal"""
            )
            assert cur.fetchone() == (
                ["inventory_ledger_no_truncate", "inventory_ledger_no_update_delete"],
                1,
            )
    finally:
        call_command("repair_balances", "--schema", "acme")
    assert _balance_table("acme") is not None


# --- recorded as applied but missing: the repair --------------------------------------------------


def _guide_rollback_by_hand(schema: str = "acme") -> None:
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # DDL refuses pending deferred FK checks
        cur.execute(f'SET search_path TO "{schema}", public')
        cur.execute(
            "DROP TRIGGER IF EXISTS inventory_ledger_balance_trigger ON inventory_ledger;"
            "DROP FUNCTION IF EXISTS update_inventory_balance();"
            "DROP TABLE IF EXISTS inventory_balances;"
        )
        cur.execute("SET search_path TO public")
    connection.set_schema_to_public()


def _step(html: str, key: str) -> str:
    start = html.index(f'id="step-{key}"')
    return html[start : html.index("</li>", start)]


def test_it_shows_missing_objects_as_not_applied_and_repairs_them(as_admin, sync_jobs, acme):
    from django_tenants.utils import schema_context

    with schema_context("acme"):
        items, locations, _ = make_catalog(prefix="RB")
    post(
        "acme",
        [{"item": items[0].sku, "location": locations[0].code, "qty": "5", "kind": "receipt"}],
    )
    _guide_rollback_by_hand()

    html = text(as_admin.get("/orgs/acme/runbook/"))
    migrate = _step(html, "migrate")
    assert 'data-done="false"' in migrate and "✗" in migrate and "✓" not in migrate
    assert (
        "recorded as applied, but missing in the database: inventory_balances, "
        "inventory_ledger_balance_trigger, update_inventory_balance()" in migrate
    )
    assert "manage.py repair_balances --schema acme" in migrate
    assert 'action="/orgs/acme/runbook/jobs/repair/"' in migrate and ">Repair</button>" in migrate
    assert 'data-done="false"' in _step(html, "health")
    assert 'data-done="false"' in _step(html, "validate")

    response = as_admin.post("/orgs/acme/runbook/jobs/repair/", **HX)
    assert response.status_code == 200
    job = JobRun.objects.get()
    assert (job.kind, job.status) == ("repair", "succeeded"), job.error
    assert job.result["ok"] is True and job.result["backfill"]["balance_rows_written"] == 1
    assert balance_mismatches("acme") == []

    html = text(as_admin.get("/orgs/acme/runbook/"))
    for key in ("migrate", "backfill", "validate", "health"):
        assert 'data-done="true"' in _step(html, key), key
    assert 'action="/orgs/acme/runbook/jobs/migrate/"' in _step(html, "migrate")
    assert "repair succeeded" in _step(html, "backfill")


def test_it_does_not_count_the_backfill_step_done_while_balances_do_not_cover_the_ledger(
    as_admin, acme
):
    from django_tenants.utils import schema_context

    with schema_context("acme"):
        items, locations, _ = make_catalog(prefix="RC")
    post(
        "acme",
        [{"item": items[0].sku, "location": locations[0].code, "qty": "5", "kind": "receipt"}],
    )
    call_command("backfill_balances", "--schema", "acme")  # recorded: the step names it
    html = text(as_admin.get("/orgs/acme/runbook/"))
    assert 'data-done="true"' in _step(html, "backfill")
    assert "backfill succeeded" in _step(html, "backfill")
    with connection.cursor() as cur:
        cur.execute("DELETE FROM acme.inventory_balances")
    step = _step(text(as_admin.get("/orgs/acme/runbook/")), "backfill")
    assert (
        'data-done="false"' in step and "not backfilled: 1 ledger rows and no balance row" in step
    )


def test_it_counts_only_a_backup_taken_after_the_organisation_was_created(as_admin, acme):
    from datetime import timedelta

    def backup(at, name):
        BackupRecord.objects.create(file_name=name, status="ok", started_at=at, size_bytes=10)

    backup(acme.created_at - timedelta(minutes=1), "before.dump")
    step = _step(text(as_admin.get("/orgs/acme/runbook/")), "backup")
    assert 'data-done="false"' in step
    assert "newest: before.dump, taken before acme was created" in step
    backup(acme.created_at + timedelta(seconds=1), "after.dump")
    step = _step(text(as_admin.get("/orgs/acme/runbook/")), "backup")
    assert 'data-done="true"' in step and "newest: after.dump" in step


def test_it_offers_the_repair_for_a_disabled_trigger_and_an_unpinned_function(as_admin, sync_jobs):
    with connection.cursor() as cur:
        cur.execute(
            "ALTER TABLE acme.inventory_ledger DISABLE TRIGGER inventory_ledger_balance_trigger"
        )
        cur.execute("ALTER FUNCTION acme.update_inventory_balance() RESET search_path")
    migrate = _step(text(as_admin.get("/orgs/acme/runbook/")), "migrate")
    assert 'data-done="false"' in migrate
    assert (
        "recorded as applied, but not as the migrations left them: Balance trigger is enabled; "
        "Balance function writes this schema&#x27;s balances failing" in migrate
    )
    assert 'action="/orgs/acme/runbook/jobs/repair/"' in migrate
    as_admin.post("/orgs/acme/runbook/jobs/repair/", **HX)
    assert JobRun.objects.get().status == "succeeded"
    html = text(as_admin.get("/orgs/acme/runbook/"))
    assert 'data-done="true"' in _step(html, "migrate")
    assert 'data-done="true"' in _step(html, "validate")
