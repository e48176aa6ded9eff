"""An organisation's home for its owners: what is on hand where, what needs a look (negative and
zero balances), what moved this week, and what the last reconciliation found. Every figure links
into the balance browser filtered to exactly those rows. In dashboard because it reads both the
inventory and the reconciliation layers (pyproject's import contract)."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import Abs
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from django_tenants.utils import schema_context

from inventory.models import Balance, LedgerEntry
from reconciliation.models import ReconciliationRun
from tenants.access import OWNER_ROLES, SUPPORT_ROLES, org_or_404, page_login_required

MOVED_DAYS = 7
MOVED_TOP = 10


def org_summary(org) -> dict:
    """Four aggregated queries in the tenant's schema, whatever the organisation's size."""
    since = timezone.now() - timedelta(days=MOVED_DAYS)
    with schema_context(org.schema_name):
        # Per location and unit: a total of kg plus pieces means nothing.
        per_location = list(
            Balance.objects.values("location__code", "location__name", "item__unit")
            .annotate(total=Sum("qty_canonical"), keys=Count("id"))
            .order_by("location__code", "item__unit")
        )
        signs = Balance.objects.aggregate(
            negative=Count("id", filter=Q(qty_canonical__lt=0)),
            zero=Count("id", filter=Q(qty_canonical=0)),
            keys=Count("id"),
        )
        moved = list(
            LedgerEntry.objects.filter(occurred_at__gte=since)
            .values("item_id", "item__sku", "item__name", "item__unit")
            .annotate(movements=Count("id"), volume=Sum(Abs("qty_canonical")))
            .order_by("-movements", "-volume", "item__sku")[:MOVED_TOP]
        )
    last_run = (
        ReconciliationRun.objects.filter(organization=org, dry_run=False)
        .order_by("-started_at")
        .first()
    )
    return {
        "per_location": per_location,
        "signs": signs,
        "moved": moved,
        "moved_days": MOVED_DAYS,
        "last_run": last_run,
    }


@page_login_required
@require_GET
def org_home(request, slug: str) -> HttpResponse:
    org = org_or_404(request.user, slug, OWNER_ROLES)
    context = {"org": org, **org_summary(org)}
    # The queue is support's page: link to it only for those who may open it.
    context["can_review"] = (
        request.user.is_superuser
        or org.memberships.filter(user=request.user, role__in=SUPPORT_ROLES).exists()
    )
    return render(request, "dashboard/org_home.html", context)
