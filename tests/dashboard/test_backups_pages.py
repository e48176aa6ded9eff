"""The backups page and "take a backup now" (platform admins only)."""

from __future__ import annotations

import pytest

from operations.jobs import job_run_create
from operations.models import BackupCheck, BackupRecord, JobRun
from tests.page_helpers import assert_login_redirect, table_body, text

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def test_it_shows_an_empty_backup_list(as_admin):
    response = as_admin.get("/backups/")
    assert response.status_code == 200
    html = text(response)
    assert "No backups yet." in html and "The monitor has not run yet" in html
    assert 'action="/backups/now/"' in html


def test_it_lists_backups_and_monitor_results(as_admin):
    from django.utils import timezone

    record = BackupRecord.objects.create(
        file_name="inventory-x.dump", status="ok", size_bytes=2048, started_at=timezone.now()
    )
    BackupRecord.objects.create(
        file_name="inventory-y.dump", status="failed", started_at=timezone.now(), error="disk full"
    )
    BackupCheck.objects.create(ok=True, message="newest backup readable", backup=record)
    html = text(as_admin.get("/backups/"))
    body = table_body(html, "backups")
    assert "inventory-x.dump" in body and "2.0\xa0KB" in body
    assert "inventory-y.dump" in body and "disk full" in body
    assert "newest backup readable" in html


def test_it_shows_a_running_backup_job(as_admin):
    job = job_run_create(kind="backup")
    html = text(as_admin.get("/backups/"))
    assert f'id="jobrun-{job.id}"' in html and f'hx-get="/jobs/{job.id}/"' in html


@pytest.mark.parametrize("who", ["as_acme_owner", "as_acme_support"])
def test_it_refuses_backups_to_non_admins(who, request, sync_jobs, backup_dir):
    client = request.getfixturevalue(who)
    assert client.get("/backups/").status_code == 403
    assert client.post("/backups/now/").status_code == 403
    assert BackupRecord.objects.count() == 0 and JobRun.objects.count() == 0


def test_it_asks_anonymous_visitors_to_log_in_for_backups(anon, sync_jobs, backup_dir):
    assert_login_redirect(anon.get("/backups/"), "/backups/")
    response = anon.post("/backups/now/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert BackupRecord.objects.count() == 0


def test_it_takes_a_backup_now(as_admin, admin_user, sync_jobs, backup_dir):
    response = as_admin.post("/backups/now/", follow=True)
    assert response.redirect_chain == [("/backups/", 302)]
    record = BackupRecord.objects.get()
    assert record.status == "ok" and record.size_bytes > 0
    assert (backup_dir / record.file_name).stat().st_size == record.size_bytes
    job = JobRun.objects.get()
    assert job.kind == "backup" and job.status == "succeeded"
    assert job.requested_by == admin_user.username
    assert record.file_name in table_body(text(response), "backups")


def test_it_returns_the_job_partial_to_htmx(as_admin, sync_jobs, backup_dir):
    response = as_admin.post("/backups/now/", **HX)
    assert response.status_code == 200
    job = JobRun.objects.get()
    assert f'id="jobrun-{job.id}"' in text(response) and "<html" not in text(response)
    assert BackupRecord.objects.get().status == "ok"
    status = as_admin.get(f"/jobs/{job.id}/")
    assert status["HX-Trigger"] == "job-finished" and "backup: succeeded" in text(status)


def test_it_answers_409_and_queues_nothing_while_a_backup_is_under_way(as_admin, backup_dir):
    from django_q.models import OrmQ

    assert as_admin.post("/backups/now/", **HX).status_code == 200  # queued, no worker here
    [job] = JobRun.objects.all()
    assert job.status == "queued" and OrmQ.objects.count() == 1
    second = as_admin.post("/backups/now/", **HX)
    assert second.status_code == 409
    assert f'id="jobrun-{job.id}"' in text(second)
    assert f"A backup job for the platform is already queued (job {job.id}" in text(second)
    response = as_admin.post("/backups/now/", follow=True)
    assert response.redirect_chain == [("/backups/", 302)]
    assert [str(m) for m in response.context["messages"]][0].startswith("A backup job for the")
    assert list(JobRun.objects.values_list("id", "status")) == [(job.id, "queued")]
    assert OrmQ.objects.count() == 1 and BackupRecord.objects.count() == 0


def test_it_takes_backups_only_on_post(as_admin, backup_dir):
    assert as_admin.get("/backups/now/").status_code == 405
    assert as_admin.post("/backups/").status_code == 405
    assert BackupRecord.objects.count() == 0
