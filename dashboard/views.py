"""Platform pages: home, the tenant fleet, and one organisation's migration runbook with its jobs."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import capfirst
from django.views.decorators.http import require_GET, require_POST

from dashboard import fleet
from dashboard.fleet_runs import fleet_runs_recent
from dashboard.forms import FleetRunStartForm, OrganizationCreateForm
from operations.backups import newest_backup_status
from operations.dispatch import job_start
from operations.jobs import job_run_reap
from operations.models import JobRun
from tenants.access import (
    OWNER_ROLES,
    SUPPORT_ROLES,
    is_platform_admin,
    org_or_404,
    orgs_for,
    page_login_required,
    platform_admin_required,
)
from tenants.models import Membership

RUNBOOK_JOBS = JobRun.RUNBOOK_KINDS


@page_login_required
def home(request) -> HttpResponse:
    """Send each kind of user to the page they came for."""
    user = request.user
    if is_platform_admin(user):
        return redirect("fleet")
    owned = orgs_for(user, OWNER_ROLES)
    supported = orgs_for(user, SUPPORT_ROLES)
    if supported and not owned:
        return redirect("reconciliation")
    if owned:
        # Their organisation's home: what needs a look, linking into the balances.
        return redirect("org_home", slug=owned[0].slug)
    return render(request, "dashboard/home.html", {"orgs": []})


@platform_admin_required
@require_GET
def fleet_page(request) -> HttpResponse:
    """Every organisation's state, searched, filtered, sorted and paged on the server, with a
    fixed number of queries whatever the fleet's size; the fleet runs and their start form."""
    q = request.GET.get("q", "")[:100]
    state = request.GET.get("state", "")
    if request.GET.get("attention") == "1":  # the older link
        state = "attention"
    if state not in fleet.STATES:
        state = ""
    sort = request.GET.get("sort", "slug")
    if sort not in fleet.SORTS:
        sort = "slug"
    desc = request.GET.get("dir") == "desc"
    result = fleet.fleet_page_rows(
        q=q, state=state, sort=sort, desc=desc, page=request.GET.get("page", 1)
    )
    return render(
        request,
        "dashboard/fleet.html",
        {
            "rows": result.page.object_list,
            "page": result.page,
            "counts": result.counts,
            "total": result.total,
            "q": q,
            "state": state,
            # The links' filters, URL-encoded (a search may hold & or #).
            "base": "?" + urlencode({"q": q, "state": state}),
            "sort": sort,
            "desc": desc,
            "only_attention": state == "attention",
            "backup": newest_backup_status(),
            "runs": fleet_runs_recent(3),
            "start_form": FleetRunStartForm(),
            "create_form": OrganizationCreateForm(),
        },
    )


@page_login_required
@require_GET
def my_orgs(request) -> HttpResponse:
    owned = {o.id for o in orgs_for(request.user, OWNER_ROLES)}
    supported = {o.id for o in orgs_for(request.user, SUPPORT_ROLES)}
    roles = dict(
        Membership.objects.filter(user=request.user).values_list("organization_id", "role")
    )
    rows = [
        {
            "org": o,
            "owner": o.id in owned,
            "support": o.id in supported,
            "role": "platform admin" if is_platform_admin(request.user) else roles.get(o.id, ""),
        }
        for o in orgs_for(request.user, (*OWNER_ROLES, *SUPPORT_ROLES))
    ]
    return render(request, "dashboard/my_orgs.html", {"rows": rows})


@platform_admin_required
@require_GET
def runbook_page(request, slug: str) -> HttpResponse:
    org = org_or_404(request.user, slug, ())
    # The steps come first: they reap the schema's runs whose worker died (fleet_rows), so the
    # recent jobs read next do not show a dead run as running when nobody polls it.
    steps, validation = fleet.runbook_steps(org)
    recent = JobRun.objects.filter(schema_name=org.schema_name).order_by("-created_at")[:8]
    template = (
        "dashboard/_runbook_steps.html"
        if request.headers.get("HX-Request")
        else "dashboard/runbook.html"
    )
    return render(
        request,
        template,
        {"org": org, "steps": steps, "validation": validation, "recent_jobs": recent},
    )


@platform_admin_required
@require_POST
def runbook_job(request, slug: str, kind: str) -> HttpResponse:
    org = org_or_404(request.user, slug, ())
    if kind not in RUNBOOK_JOBS:
        return HttpResponse(
            f"Unknown job; use one of: {', '.join(sorted(RUNBOOK_JOBS))}.",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    job = job_start(
        kind=kind, schema_name=org.schema_name, requested_by=request.user.get_username()
    )
    return _job_response(request, job, reverse("runbook", args=[slug]))


@platform_admin_required
@require_POST
def runbook_rollback(request, slug: str) -> HttpResponse:
    org = org_or_404(request.user, slug, ())
    typed = request.POST.get("confirm_slug", "").strip()
    if typed != org.slug:
        message = f"Type the organisation's slug ({org.slug}) to confirm the rollback."
        if request.headers.get("HX-Request"):
            return HttpResponse(f'<p class="error" role="alert">{message}</p>', status=422)
        messages.error(request, message)
        return redirect("runbook", slug=slug)
    job = job_start(
        kind=JobRun.Kind.ROLLBACK,
        schema_name=org.schema_name,
        requested_by=request.user.get_username(),
    )
    return _job_response(request, job, reverse("runbook", args=[slug]))


def _job_response(request, job: JobRun, fallback_url: str) -> HttpResponse:
    """The run to follow. A refused start (one of its kind already under way for the schema)
    queued nothing: 409, with the fragment of the run under way so the page follows that one."""
    refused = getattr(job, "refused", False)
    if request.headers.get("HX-Request"):
        return render(request, "operations/_job.html", {"job": job}, status=409 if refused else 200)
    if refused:
        messages.error(request, f"{capfirst(job.refusal)}.")
    else:
        messages.info(request, f"Started {job.kind} (job {job.id}).")
    return redirect(fallback_url)


@page_login_required
@require_GET
def job_status(request, job_id: int) -> HttpResponse:
    job = get_object_or_404(JobRun, pk=job_id)
    if not is_platform_admin(request.user):
        # Support staff may follow reconciliation jobs of organisations they support.
        allowed = {o.schema_name for o in orgs_for(request.user, SUPPORT_ROLES)}
        if job.kind != JobRun.Kind.RECONCILE or job.schema_name not in allowed:
            return HttpResponse(status=404)
    if job.is_active:
        job_run_reap(job)  # a dead worker's run turns "interrupted" here, and the polling stops
    response = render(request, "operations/_job.html", {"job": job})
    if job.status in JobRun.TERMINAL:
        response["HX-Trigger"] = "job-finished"
    return response
