"""Backups page for platform admins: recent backups with size, age and monitor result; take one now."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import capfirst
from django.views.decorators.http import require_GET, require_POST

from operations.dispatch import job_start
from operations.jobs import job_runs_reap
from operations.models import BackupCheck, BackupRecord, JobRun
from tenants.access import platform_admin_required


@platform_admin_required
@require_GET
def backups_page(request) -> HttpResponse:
    records = list(BackupRecord.objects.order_by("-started_at")[:30])
    checks = list(BackupCheck.objects.select_related("backup").order_by("-checked_at")[:10])
    active = list(JobRun.objects.filter(kind=JobRun.Kind.BACKUP, status__in=JobRun.ACTIVE))
    job_runs_reap(active)  # a backup whose worker died is not shown as running
    running = next((j for j in active if j.is_active), None)
    return render(
        request,
        "dashboard/backups.html",
        {"records": records, "checks": checks, "running": running},
    )


@platform_admin_required
@require_POST
def backup_now(request) -> HttpResponse:
    job = job_start(kind=JobRun.Kind.BACKUP, requested_by=request.user.get_username())
    # A backup already under way is not started twice: 409, and the page follows that one.
    refused = getattr(job, "refused", False)
    if request.headers.get("HX-Request"):
        return render(request, "operations/_job.html", {"job": job}, status=409 if refused else 200)
    if refused:
        messages.error(request, f"{capfirst(job.refusal)}.")
    return redirect("backups")
