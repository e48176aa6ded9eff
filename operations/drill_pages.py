"""The backups page's restore buttons: run a drill now, restore one organisation from a backup.
Both are recorded job runs (operations/backup_jobs.py); the page follows them like a backup."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import capfirst
from django.views.decorators.http import require_POST

from operations.dispatch import job_start
from operations.models import JobRun
from tenants.access import platform_admin_required


def _answer(request, job) -> HttpResponse:
    refused = getattr(job, "refused", False)
    if request.headers.get("HX-Request"):
        return render(request, "operations/_job.html", {"job": job}, status=409 if refused else 200)
    if refused:
        messages.error(request, f"{capfirst(job.refusal)}.")
    return redirect("backups")


@platform_admin_required
@require_POST
def drill_now(request) -> HttpResponse:
    job = job_start(kind=JobRun.Kind.RESTORE_DRILL, requested_by=request.user.get_username())
    return _answer(request, job)


@platform_admin_required
@require_POST
def restore_org_now(request) -> HttpResponse:
    from tenants.models import Organization

    org = get_object_or_404(Organization.objects.tenants(), slug=request.POST.get("org", ""))
    job = job_start(
        kind=JobRun.Kind.RESTORE_ORG,
        schema_name=org.schema_name,
        requested_by=request.user.get_username(),
        backup=request.POST.get("backup", "")[:255],
    )
    return _answer(request, job)
