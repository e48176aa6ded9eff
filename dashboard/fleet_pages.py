"""The fleet page's actions: start a fleet run and follow it (pause, resume, cancel, retry), and
organisations (create with a first owner, deactivate/reactivate with the slug typed). Platform
admins only; each action calls the same service as its command."""

from __future__ import annotations

import secrets

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from dashboard.fleet import fleet_select
from dashboard.fleet_runs import (
    FleetRunError,
    fleet_run_advance,
    fleet_run_cancel,
    fleet_run_pause,
    fleet_run_progress,
    fleet_run_resume,
    fleet_run_retry,
    fleet_run_start,
)
from dashboard.forms import ConfirmSlugForm, FleetRunStartForm, OrganizationCreateForm
from dashboard.models import FleetRun, FleetRunItem
from tenants.access import platform_admin_required
from tenants.models import Membership, Organization
from tenants.services import (
    membership_grant,
    organization_create,
    organization_set_active,
    user_ensure,
)

ITEMS_PER_PAGE = 100


def _refuse(request, message: str, status: int, back: str) -> HttpResponse:
    if request.headers.get("HX-Request"):
        return HttpResponse(f'<p class="error" role="alert">{message}</p>', status=status)
    messages.error(request, message)
    response = redirect(back)
    return response


@platform_admin_required
@require_POST
def fleet_run_create(request) -> HttpResponse:
    form = FleetRunStartForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
    data = form.cleaned_data
    try:
        orgs, selection = fleet_select(
            only=data["only"] or None, slugs=[data["org"]] if data["org"] else None
        )
        run = fleet_run_start(
            operation=data["operation"],
            orgs=orgs,
            parallel=data["parallel"],
            selection=selection,
            requested_by=request.user.get_username(),
        )
    except FleetRunError as err:
        return HttpResponse(str(err), status=400, content_type="text/plain; charset=utf-8")
    return redirect("fleet_run", run_id=run.pk)


@platform_admin_required
@require_GET
def fleet_run_page(request, run_id: int) -> HttpResponse:
    run = get_object_or_404(FleetRun, pk=run_id)
    if run.status in FleetRun.OPEN or run.finished_at is None:
        run = fleet_run_advance(run.pk)  # a poll also moves it on (and reaps dead runs)
    items = FleetRunItem.objects.filter(fleet_run=run).select_related("organization", "job_run")
    page = Paginator(items, ITEMS_PER_PAGE).get_page(request.GET.get("page", 1))
    failed = list(items.filter(state=FleetRunItem.State.FAILED)[:ITEMS_PER_PAGE])
    context = {"run": run, "p": fleet_run_progress(run), "page": page, "failed": failed}
    template = (
        "dashboard/fleet_run_progress.html"
        if request.headers.get("HX-Request")
        else "dashboard/fleet_run.html"
    )
    return render(request, template, context)


ACTIONS = {
    "pause": fleet_run_pause,
    "resume": fleet_run_resume,
    "cancel": fleet_run_cancel,
}


@platform_admin_required
@require_POST
def fleet_run_action(request, run_id: int, action: str) -> HttpResponse:
    run = get_object_or_404(FleetRun, pk=run_id)
    try:
        if action == "retry":
            item = request.POST.get("item")
            ids = [int(item)] if item and item.isdigit() else None
            fleet_run_retry(run.pk, ids)
        elif action in ACTIONS:
            ACTIONS[action](run.pk)
        else:
            return HttpResponse("Unknown action.", status=404)
    except FleetRunError as err:
        return _refuse(request, f"{err}.", 409, f"/fleet/runs/{run.pk}/")
    return redirect("fleet_run", run_id=run.pk)


# --- organisations -------------------------------------------------------------------------------


@platform_admin_required
@require_POST
def organization_new(request) -> HttpResponse:
    form = OrganizationCreateForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        return _refuse(request, errors, 400, "fleet")
    data = form.cleaned_data
    slug = data["slug"].strip().lower()
    if Organization.objects.filter(slug=slug).exists():
        return _refuse(request, f"An organisation {slug} exists already.", 409, "fleet")
    try:
        org, _created = organization_create(slug=slug, name=data["name"])
    except ValidationError as err:
        return _refuse(request, " ".join(err.messages), 400, "fleet")
    email = data["owner_email"].lower()
    owner = get_user_model().objects.filter(email__iexact=email).order_by("pk").first()
    if owner is None:
        # A new user without a known password: they set one with "forgot password" (or an
        # admin does); the page never shows one.
        owner = user_ensure(username=email, password=secrets.token_urlsafe(32), email=email)
        owner.set_unusable_password()
        owner.save(update_fields=["password"])
    membership_grant(user=owner, organization=org, role=Membership.Role.OWNER)
    messages.info(request, f"Created {org.slug} (schema {org.schema_name}); owner {email}.")
    return redirect("runbook", slug=org.slug)


@platform_admin_required
@require_POST
def organization_active(request, slug: str, action: str) -> HttpResponse:
    org = get_object_or_404(Organization.objects.tenants(), slug=slug)
    if action not in ("deactivate", "reactivate"):
        return HttpResponse("Unknown action.", status=404)
    form = ConfirmSlugForm(request.POST)
    if not form.is_valid() or form.cleaned_data["confirm_slug"] != org.slug:
        return _refuse(
            request, f"Type the organisation's slug ({org.slug}) to confirm.", 422, "fleet"
        )
    organization_set_active(organization=org, is_active=action == "reactivate")
    messages.info(request, f"{org.slug} {action}d.")
    return redirect("fleet")
