"""Support pages: runs with their figures, the discrepancy queue, one discrepancy with the ledger
entries behind it, approve / dismiss (one or many), and who resolved what."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_tenants.utils import schema_context

from inventory.models import LedgerEntry
from operations.dispatch import job_start
from reconciliation.models import Discrepancy, ReconciliationRun
from reconciliation.services import ResolutionError, discrepancy_approve, discrepancy_dismiss
from tenants.access import SUPPORT_ROLES, orgs_for, support_required

STATUSES = [s for s, _ in Discrepancy.Status.choices]


def _visible(request):
    orgs = orgs_for(request.user, SUPPORT_ROLES)
    return orgs, Discrepancy.objects.filter(organization__in=orgs)


def _discrepancy_or_404(request, pk: int) -> Discrepancy:
    _, qs = _visible(request)
    d = qs.select_related("organization", "resolved_by", "run").filter(pk=pk).first()
    if d is None:
        raise Http404("No such discrepancy.")
    return d


@support_required
@require_GET
def queue_page(request) -> HttpResponse:
    orgs, qs = _visible(request)
    org = request.GET.get("org", "")
    status = request.GET.get("status", "open")
    min_size = request.GET.get("min", "").strip()
    max_size = request.GET.get("max", "").strip()
    if org:
        qs = qs.filter(organization__slug=org)
    if status in STATUSES:
        qs = qs.filter(status=status)
    errors = []
    for name, value, lookup in (
        ("min", min_size, "abs_difference__gte"),
        ("max", max_size, "abs_difference__lt"),
    ):
        if value:
            try:
                number = Decimal(value)
            except InvalidOperation:
                number = None
            if number is None or not number.is_finite():
                errors.append(f"“{value}” is not a number ({name} size).")
            else:
                qs = qs.filter(**{lookup: number})
    qs = qs.select_related("organization", "resolved_by").order_by("-abs_difference", "-id")
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    runs = (
        ReconciliationRun.objects.filter(organization__in=orgs)
        .select_related("organization")
        .order_by("-started_at")[:15]
    )
    return render(
        request,
        "reconciliation/queue.html",
        {
            "orgs": orgs,
            "page": page,
            "rows": list(page.object_list),
            "runs": runs,
            "errors": errors,
            "f": {"org": org, "status": status, "min": min_size, "max": max_size},
            "statuses": STATUSES,
        },
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
    _, qs = _visible(request)
    ids = sorted({int(i) for i in request.POST.getlist("ids") if i.isascii() and i.isdigit()})
    if not ids:
        messages.error(request, "Select at least one discrepancy to approve.")
        return _back(request)
    allowed = list(qs.filter(pk__in=ids, status="open").values_list("pk", flat=True))
    done, failed = 0, []
    for pk in allowed:
        try:
            discrepancy_approve(
                discrepancy_id=pk, user=request.user, note=request.POST.get("note", "")
            )
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
