"""Support pages: runs with their figures, the discrepancy queue, one discrepancy with the ledger
entries behind it, approve / dismiss (one or many), and who resolved what."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_tenants.utils import schema_context

from inventory.models import LedgerEntry
from operations.dispatch import job_start
from reconciliation.forms import SORTS, QueueFilterForm
from reconciliation.models import Discrepancy, ReconciliationRun
from reconciliation.services import (
    ResolutionError,
    discrepancies_dismiss,
    discrepancy_approve,
    discrepancy_dismiss,
)
from reconciliation.trend import queue_runs, trend_chart
from tenants.access import SUPPORT_ROLES, orgs_for, support_required

STATUSES = [s for s, _ in Discrepancy.Status.choices]


def _visible(request):
    orgs = orgs_for(request.user, SUPPORT_ROLES)
    return orgs, Discrepancy.objects.filter(organization__in=orgs)


def _discrepancy_or_404(request, pk: int) -> Discrepancy:
    _, qs = _visible(request)
    d = qs.select_related("organization", "resolved_by", "run", "supersedes").filter(pk=pk).first()
    if d is None:
        raise Http404("No such discrepancy.")
    return d


@support_required
@require_GET
def queue_page(request) -> HttpResponse:
    orgs, qs = _visible(request)
    form = QueueFilterForm(request.GET, orgs=orgs)
    form.is_valid()  # errors are shown; the valid filters still apply
    org = form.value("org", "")
    status = form.value("status", Discrepancy.Status.OPEN)
    if org:
        qs = qs.filter(organization__slug=org)
    if status != "all":
        qs = qs.filter(status=status)
    if form.value("run") is not None:
        qs = qs.filter(run_id=form.value("run"))
    if form.value("min") is not None:
        qs = qs.filter(abs_difference__gte=form.value("min"))
    if form.value("max") is not None:
        qs = qs.filter(abs_difference__lt=form.value("max"))
    sort = form.value("sort", "size")
    qs = qs.select_related("organization", "resolved_by").order_by(*SORTS[sort][1])
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    # One query for the runs table and the trend; a chosen organisation narrows both.
    runs, charted = queue_runs(orgs, org)
    # What the address bar asked for, echoed into the form and the pager (bad values included,
    # so the user sees what was refused).
    raw = {
        name: request.GET.get(name, "") for name in ("org", "status", "run", "min", "max", "sort")
    }
    raw["status"] = raw["status"] or status
    raw["sort"] = raw["sort"] or sort
    return render(
        request,
        "reconciliation/queue.html",
        {
            "orgs": orgs,
            "page": page,
            "rows": list(page.object_list),
            "runs": runs,
            "trend": trend_chart(charted, all_orgs=not org),
            "form": form,
            "f": raw,
            "query": urlencode(raw),
            "statuses": STATUSES,
            "sorts": [(k, v[0]) for k, v in SORTS.items()],
        },
        status=400 if form.errors else 200,
    )


@support_required
@require_GET
def discrepancy_page(request, pk: int) -> HttpResponse:
    d = _discrepancy_or_404(request, pk)
    with schema_context(d.organization.schema_name):
        entries = list(
            LedgerEntry.objects.filter(
                item_id=d.item_id, location_id=d.location_id, lot_id=d.lot_id
            ).order_by("-id")[:50]
        )
    history = (
        Discrepancy.objects.filter(
            organization=d.organization,
            item_id=d.item_id,
            location_id=d.location_id,
            lot_id=d.lot_id,
        )
        .exclude(pk=d.pk)
        .select_related("resolved_by")
        .order_by("-created_at")[:20]
    )
    return render(
        request, "reconciliation/discrepancy.html", {"d": d, "entries": entries, "history": history}
    )


@support_required
@require_POST
def discrepancy_resolve(request, pk: int, action: str) -> HttpResponse:
    d = _discrepancy_or_404(request, pk)
    note = request.POST.get("note", "")
    try:
        if action == "approve":
            d = discrepancy_approve(discrepancy_id=d.pk, user=request.user, note=note)
            messages.success(
                request,
                f"Discrepancy {d.pk} {d.get_status_display()}: balance {d.balance_before} → {d.balance_after}.",
            )
        elif action == "dismiss":
            d = discrepancy_dismiss(discrepancy_id=d.pk, user=request.user, reason=note)
            messages.success(request, f"Discrepancy {d.pk} dismissed.")
        else:
            raise Http404
    except ResolutionError as err:
        messages.error(request, str(err))
        return redirect("discrepancy", pk=pk)
    return redirect("discrepancy", pk=pk)


@support_required
@require_POST
def bulk_approve(request) -> HttpResponse:
    """The queue's bulk form: approve the selected (default) or, with action=dismiss, dismiss
    them all with one reason."""
    _, qs = _visible(request)
    action = request.POST.get("action", "approve")
    if action not in ("approve", "dismiss"):
        return HttpResponse("Unknown action.", status=400, content_type="text/plain")
    ids = sorted({int(i) for i in request.POST.getlist("ids") if i.isascii() and i.isdigit()})
    if not ids:
        messages.error(request, f"Select at least one discrepancy to {action}.")
        return _back(request)
    allowed = list(qs.filter(pk__in=ids, status="open").values_list("pk", flat=True))
    note = request.POST.get("note", "")
    if action == "dismiss":
        try:
            done = len(
                discrepancies_dismiss(discrepancy_ids=allowed, user=request.user, reason=note)
            )
        except ResolutionError as err:
            messages.error(request, f"Nothing dismissed: {err}.")
            return _back(request)
        skipped = len(ids) - done
        messages.success(
            request,
            f"Dismissed {done} discrepanc{'y' if done == 1 else 'ies'}."
            + (f" {skipped} skipped (not open or not yours)." if skipped else ""),
        )
        return _back(request)
    done, failed = 0, []
    for pk in allowed:
        try:
            discrepancy_approve(discrepancy_id=pk, user=request.user, note=note)
            done += 1
        except ResolutionError as err:
            failed.append(str(err))
    skipped = len(ids) - len(allowed)
    messages.success(
        request,
        f"Approved {done} discrepanc{'y' if done == 1 else 'ies'}."
        + (f" {skipped} skipped (not open or not yours)." if skipped else ""),
    )
    for message in failed:
        messages.error(request, message)
    return _back(request)


def _back(request) -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("reconciliation")


@support_required
@require_POST
def run_now(request) -> HttpResponse:
    """Start a reconciliation for one organisation the user supports, as a job the page follows."""
    orgs = {o.slug: o for o in orgs_for(request.user, SUPPORT_ROLES)}
    org = orgs.get(request.POST.get("org", ""))
    mode = request.POST.get("mode", "full")
    if org is None or mode not in ReconciliationRun.Mode.values:
        return HttpResponse(
            '<p class="error" role="alert">Choose one of your organisations and a mode.</p>',
            status=400,
        )
    job = job_start(
        kind="reconcile",
        schema_name=org.schema_name,
        requested_by=request.user.get_username(),
        mode=mode,
    )
    return render(request, "operations/_job.html", {"job": job})
