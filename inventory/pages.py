"""Balance browser for owners (and platform admins): filters, sorting, server-side pages, a
streamed CSV export of exactly the filtered view, and an item's page with its ledger history."""

from __future__ import annotations

import csv
from dataclasses import dataclass

from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django_tenants.utils import schema_context

from inventory.models import Balance, Item, LedgerEntry, Location, Lot
from inventory.selectors import BalanceFilters, balances_queryset, fmt_qty
from tenants.access import OWNER_ROLES, SUPPORT_ROLES, org_or_404, page_login_required

# Support reviews discrepancies, which link to the item: it may read an item's page, not browse.
ITEM_ROLES = tuple(dict.fromkeys(OWNER_ROLES + SUPPORT_ROLES))

PAGE_SIZE = 50
HISTORY_PAGE = 50
SORTS = {
    "item": ("item__sku", "location__code", "lot__code"),
    "-item": ("-item__sku", "location__code", "lot__code"),
    "location": ("location__code", "item__sku", "lot__code"),
    "qty": ("qty_canonical", "item__sku", "location__code"),
    "-qty": ("-qty_canonical", "item__sku", "location__code"),
    "updated": ("-updated_at", "item__sku"),
}


@dataclass(frozen=True)
class BalanceQuery:
    q: str = ""
    location: str = ""
    lot: str = ""  # a lot code, "none" for no lot
    sign: str = ""  # "", "zero", "negative", "positive"
    sort: str = "item"

    @classmethod
    def from_get(cls, get) -> BalanceQuery:
        sign = get.get("sign", "")
        sort = get.get("sort", "item")
        return cls(
            get.get("q", "").strip()[:100],
            get.get("location", "").strip()[:64],
            get.get("lot", "").strip()[:64],
            sign if sign in ("zero", "negative", "positive") else "",
            sort if sort in SORTS else "item",
        )

    def queryset(self):
        # Location and lot filter as the API does; the page adds search and sign.
        qs = balances_queryset(BalanceFilters(location=self.location, lot=self.lot))
        if self.q:
            qs = qs.filter(Q(item__sku__icontains=self.q) | Q(item__name__icontains=self.q))
        if self.sign == "zero":
            qs = qs.filter(qty_canonical=0)
        elif self.sign == "negative":
            qs = qs.filter(qty_canonical__lt=0)
        elif self.sign == "positive":
            qs = qs.filter(qty_canonical__gt=0)
        return qs.order_by(*SORTS[self.sort])

    def as_params(self, **override) -> str:
        from urllib.parse import urlencode

        data = {
            "q": self.q,
            "location": self.location,
            "lot": self.lot,
            "sign": self.sign,
            "sort": self.sort,
        } | override
        return urlencode({k: v for k, v in data.items() if v})


@page_login_required
@require_GET
def balances_page(request, slug: str) -> HttpResponse:
    org = org_or_404(request.user, slug, OWNER_ROLES)
    query = BalanceQuery.from_get(request.GET)
    with schema_context(org.schema_name):
        paginator = Paginator(query.queryset(), PAGE_SIZE)
        page = paginator.get_page(request.GET.get("page"))
        rows = list(page.object_list)
        total = paginator.count
        locations = list(Location.objects.order_by("code").values_list("code", flat=True))
    return render(
        request,
        "inventory/balances.html",
        {
            "org": org,
            "query": query,
            "page": page,
            "rows": rows,
            "total": total,
            "locations": locations,
            "sort_links": {key: query.as_params(sort=key) for key in SORTS},
            "qty_sort_link": query.as_params(sort="qty" if query.sort == "-qty" else "-qty"),
            "export_params": query.as_params(),
        },
    )


class _Echo:
    def write(self, value):
        return value


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...) sends the
# data away, =cmd|... runs programs): OWASP's CSV injection list.
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str) -> str:
    """A text cell made inert: a leading single quote makes spreadsheets show it as text. Only for
    text written by users (codes, names); quantities stay numbers (-5.000000 is not a formula)."""
    return "'" + value if value.startswith(CSV_FORMULA_START) else value


@page_login_required
@require_GET
def balances_csv(request, slug: str) -> StreamingHttpResponse:
    """Exactly the rows of the filtered view (all pages), streamed so memory stays flat."""
    org = org_or_404(request.user, slug, OWNER_ROLES)
    query = BalanceQuery.from_get(request.GET)
    writer = csv.writer(_Echo())

    def rows():
        # The response streams after the view returns: enter the schema inside the generator.
        with schema_context(org.schema_name):
            yield writer.writerow(["sku", "item", "unit", "location", "lot", "qty", "updated_at"])
            for b in query.queryset().iterator(chunk_size=2000):
                yield writer.writerow(
                    [
                        csv_text(b.item.sku),
                        csv_text(b.item.name),
                        b.item.unit,
                        csv_text(b.location.code),
                        csv_text(b.lot.code) if b.lot_id else "",
                        fmt_qty(b.qty_canonical),
                        b.updated_at.isoformat(),
                    ]
                )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{org.slug}-balances.csv"'
    return response


@page_login_required
@require_GET
def item_page(request, slug: str, item_id: int) -> HttpResponse:
    org = org_or_404(request.user, slug, ITEM_ROLES)
    before = request.GET.get("before")
    with schema_context(org.schema_name):
        item = Item.objects.filter(pk=item_id).first()
        if item is None:
            raise Http404("No such item.")
        balances = list(
            Balance.objects.filter(item=item)
            .select_related("location", "lot")
            .order_by("location__code", "lot__code")
        )
        history = (
            LedgerEntry.objects.filter(item=item).select_related("location", "lot").order_by("-id")
        )
        if before and before.isascii() and before.isdigit():
            history = history.filter(id__lt=int(before))
        entries = list(history[: HISTORY_PAGE + 1])
        lots = list(Lot.objects.filter(item=item).order_by("code"))
    more = len(entries) > HISTORY_PAGE
    entries = entries[:HISTORY_PAGE]
    total = sum((b.qty_canonical for b in balances), start=0)
    return render(
        request,
        "inventory/item.html",
        {
            "org": org,
            "item": item,
            "balances": balances,
            "entries": entries,
            "total": total,
            "lots": lots,
            "next_before": entries[-1].id if more and entries else None,
            "is_first_page": not before,
        },
    )
