"""Balance browser for owners (and platform admins): filters, sorting, server-side pages, a
streamed CSV export of exactly the filtered view, and an item's page with its ledger history."""

from __future__ import annotations

import csv
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django_tenants.utils import schema_context

from inventory.forms import HISTORY_PAGE, SORTS, BalanceFilterForm, BalanceQuery, HistoryForm
from inventory.history import (
    DEFAULT_DAYS,
    RANGES,
    history_filtered,
    on_hand_chart,
    running_balances,
)
from inventory.models import Balance, Item, LedgerEntry, Location, Lot
from inventory.selectors import balances_queryset, fmt_qty
from tenants.access import OWNER_ROLES, SUPPORT_ROLES, org_or_404, page_login_required

# Support reviews discrepancies, which link to the item: it may read an item's page, not browse.
ITEM_ROLES = tuple(dict.fromkeys(OWNER_ROLES + SUPPORT_ROLES))

PAGE_SIZE = 50


def balance_rows(query: BalanceQuery):
    qs = balances_queryset(query.filters)
    if query.q:
        qs = qs.filter(Q(item__sku__icontains=query.q) | Q(item__name__icontains=query.q))
    if query.sign == "zero":
        qs = qs.filter(qty_canonical=0)
    elif query.sign == "negative":
        qs = qs.filter(qty_canonical__lt=0)
    elif query.sign == "positive":
        qs = qs.filter(qty_canonical__gt=0)
    return qs.order_by(*SORTS[query.sort])


def _raw(request, form) -> dict[str, str]:
    """What the address bar asked for, echoed into the text inputs (bad values included, so the
    user sees what was refused)."""
    return {name: request.GET.get(name, "") for name in form.fields}


@page_login_required
@require_GET
def balances_page(request, slug: str) -> HttpResponse:
    org = org_or_404(request.user, slug, OWNER_ROLES)
    form = BalanceFilterForm(request.GET)
    form.is_valid()  # errors are shown; the valid filters still apply
    query = form.query()
    with schema_context(org.schema_name):
        paginator = Paginator(balance_rows(query), PAGE_SIZE)
        # A page past the last one shows the last (a bookmark outlives deleted rows).
        page = paginator.get_page(form.value("page", 1))
        rows = list(page.object_list)
        total = paginator.count
        locations = list(Location.objects.order_by("code").values_list("code", flat=True))
    return render(
        request,
        "inventory/balances.html",
        {
            "org": org,
            "form": form,
            "f": _raw(request, form),
            "query": query,
            "page": page,
            "rows": rows,
            "total": total,
            "locations": locations,
            "sort_links": {key: query.as_params(sort=key) for key in SORTS},
            "qty_sort_link": query.as_params(sort="qty" if query.sort == "-qty" else "-qty"),
            # Links carry only the valid filters: the export holds exactly the rows shown.
            "export_params": query.as_params(),
        },
        status=400 if form.errors else 200,
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


def _errors_text(form) -> str:
    return "".join(
        f"{form.fields[name].label}: {message}\n"
        for name, messages in form.errors.items()
        for message in messages
    )


@page_login_required
@require_GET
def balances_csv(request, slug: str) -> HttpResponse:
    """Exactly the rows of the filtered view (all pages), streamed so memory stays flat. The same
    form as the page: a bad filter is a 400 and no file (a file of other rows than asked for would
    pass for the asked ones)."""
    org = org_or_404(request.user, slug, OWNER_ROLES)
    form = BalanceFilterForm(request.GET)
    if not form.is_valid():
        # text/plain (and nosniff): the messages quote the refused value.
        return HttpResponseBadRequest(_errors_text(form), content_type="text/plain; charset=utf-8")
    query = form.query()
    writer = csv.writer(_Echo())

    def rows():
        # The response streams after the view returns: enter the schema inside the generator.
        with schema_context(org.schema_name):
            yield writer.writerow(["sku", "item", "unit", "location", "lot", "qty", "updated_at"])
            for b in balance_rows(query).iterator(chunk_size=2000):
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
    form = HistoryForm(request.GET)
    form.is_valid()  # a bad cursor or limit is reported; the history then starts at the newest
    before = form.value("before")
    limit = form.value("limit", HISTORY_PAGE)
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
        if before is not None:
            history = history.filter(id__lt=before)
        history = history_filtered(history, form)
        entries = list(history[: limit + 1])
        lots = list(Lot.objects.filter(item=item).order_by("code"))
        # Issue 15: the on-hand chart (one query) and each row's balance after it (one query).
        chart = on_hand_chart(item.id, form.value("days", DEFAULT_DAYS))
        after = running_balances(item.id, [e.id for e in entries[:limit]])
    more = len(entries) > limit
    entries = entries[:limit]
    for e in entries:
        e.after = after.get(e.id)
    total = sum((b.qty_canonical for b in balances), start=0)
    next_before = entries[-1].id if more and entries else None
    return render(
        request,
        "inventory/item.html",
        {
            "org": org,
            "item": item,
            "form": form,
            "balances": balances,
            "entries": entries,
            "total": total,
            "lots": lots,
            "next_params": (
                urlencode(
                    form.filter_params()
                    | {"before": next_before}
                    | ({"limit": limit} if limit != HISTORY_PAGE else {})
                )
                if next_before
                else ""
            ),
            "is_first_page": before is None,
            "chart": chart,
            "chart_days": form.value("days", DEFAULT_DAYS),
            "chart_ranges": RANGES,
            "filter_params": urlencode(form.filter_params()),
        },
        status=400 if form.errors else 200,
    )
