"""Balance browser for owners (and platform admins): filters, sorting, server-side pages, a
streamed CSV export of exactly the filtered view, and an item's page with its ledger history."""

from __future__ import annotations

import csv
import uuid
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q
from django.http import Http404, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods
from django_tenants.utils import schema_context

from inventory.forms import (
    HISTORY_PAGE,
    SORTS,
    BalanceFilterForm,
    BalanceQuery,
    HistoryForm,
    StockPolicyForm,
    TransferForm,
)
from inventory.history import (
    DEFAULT_DAYS,
    RANGES,
    history_filtered,
    on_hand_chart,
    running_balances,
)
from inventory.models import Balance, Item, LedgerEntry, Lot
from inventory.selectors import balances_queryset, fmt_qty, with_qty_as_of
from inventory.services.errors import InventoryError
from inventory.services.stock_policy import policy_set
from inventory.services.transfers import TransferInput, transfer_create
from tenants.access import OWNER_ROLES, SUPPORT_ROLES, org_or_404, page_login_required

# Support reviews discrepancies, which link to the item: it may read an item's page, not browse.
ITEM_ROLES = tuple(dict.fromkeys(OWNER_ROLES + SUPPORT_ROLES))

PAGE_SIZE = 50


def balance_rows(query: BalanceQuery):
    """Balance rows with `qty_at`: the current balance, or the one as of `query.as_of` (which
    the sign filter and the quantity sort then use)."""
    qs = with_qty_as_of(balances_queryset(query.filters), query.as_of)
    if query.q:
        qs = qs.filter(Q(item__sku__icontains=query.q) | Q(item__name__icontains=query.q))
    if query.sign == "zero":
        qs = qs.filter(qty_at=0)
    elif query.sign == "negative":
        qs = qs.filter(qty_at__lt=0)
    elif query.sign == "positive":
        qs = qs.filter(qty_at__gt=0)
    return qs.order_by(*(k.replace("qty_canonical", "qty_at") for k in SORTS[query.sort]))


def _raw(request, form) -> dict[str, str]:
    """What the address bar asked for, echoed into the text inputs (bad values included, so the
    user sees what was refused)."""
    return {name: request.GET.get(name, "") for name in form.fields}


@page_login_required
@require_http_methods(["GET", "POST"])
def balances_page(request, slug: str) -> HttpResponse:
    org = org_or_404(request.user, slug, OWNER_ROLES)
    policy_saved = False
    if request.method == "POST":
        # The owner's no-negative stock policy (inventory/services/stock_policy.py).
        policy_form = StockPolicyForm(request.POST)
        if policy_form.is_valid():
            with schema_context(org.schema_name):
                policy_set(
                    no_negative_stock=policy_form.cleaned_data["no_negative_stock"],
                    by=f"user:{request.user.get_username()}",
                )
            policy_saved = True
    form = BalanceFilterForm(request.GET)
    form.is_valid()  # errors are shown; the valid filters still apply
    query = form.query()
    with schema_context(org.schema_name):
        paginator = Paginator(balance_rows(query), PAGE_SIZE)
        # A page past the last one shows the last (a bookmark outlives deleted rows).
        page = paginator.get_page(form.value("page", 1))
        rows = list(page.object_list)
        total = paginator.count
        locations, no_negative = _locations_and_policy()
    return render(
        request,
        "inventory/balances.html",
        {
            "no_negative_stock": no_negative,
            "policy_saved": policy_saved,
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


def _locations_and_policy() -> tuple[list[str], bool]:
    """The location filter's codes and the stock policy in one query (the page's budget)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ARRAY(SELECT code FROM inventory_locations ORDER BY code), "
            "COALESCE((SELECT no_negative_stock FROM inventory_settings WHERE id), false)"
        )
        codes, no_negative = cursor.fetchone()
    return list(codes), bool(no_negative)


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
            # Tuples, not model instances (three per row with their related objects): the
            # export ran at ~10,000 rows/s and a 198,659-row file hit gunicorn's timeout. One
            # writerows() per 2,000-row batch from a server-side cursor keeps memory flat.
            rows_qs = balance_rows(query).values_list(
                "item__sku", "item__name", "item__unit", "location__code", "lot__code",
                "qty_at", "updated_at",
            )
            batch = []
            for sku, name, unit, location, lot, qty, updated_at in rows_qs.iterator(
                chunk_size=2000
            ):
                batch.append(
                    (
                        csv_text(sku),
                        csv_text(name),
                        unit,
                        csv_text(location),
                        csv_text(lot) if lot is not None else "",
                        fmt_qty(qty),
                        updated_at.isoformat(),
                    )
                )
                if len(batch) == 2000:
                    yield "".join(writer.writerow(row) for row in batch)
                    batch = []
            if batch:
                yield "".join(writer.writerow(row) for row in batch)

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{org.slug}-balances.csv"'
    return response


@page_login_required
@require_http_methods(["GET", "POST"])
def item_page(request, slug: str, item_id: int) -> HttpResponse:
    # Support may read the page; a transfer (POST) needs an owner.
    org = org_or_404(request.user, slug, ITEM_ROLES if request.method == "GET" else OWNER_ROLES)
    form = HistoryForm(request.GET)
    form.is_valid()  # a bad cursor or limit is reported; the history then starts at the newest
    before = form.value("before")
    limit = form.value("limit", HISTORY_PAGE)
    as_of = form.value("as_of")
    transfer_form, transfer_error, transferred = _transfer(request, org, item_id)
    with schema_context(org.schema_name):
        item = Item.objects.filter(pk=item_id).first()
        if item is None:
            raise Http404("No such item.")
        balances = list(
            with_qty_as_of(Balance.objects.filter(item=item), as_of)
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
    total = sum((b.qty_at for b in balances), start=0)
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
            "as_of": as_of,
            "transfer_form": transfer_form,
            "transfer_error": transfer_error,
            "transferred": transferred,
        },
        status=400 if form.errors or transfer_error or transfer_form.errors else 200,
    )


def _transfer(request, org, item_id: int):
    """The item page's transfer form: (form, error message, posting result). A fresh
    idempotency key rides in each form, so a double submit posts once."""
    if request.method != "POST":
        return TransferForm(initial={"idempotency_key": uuid.uuid4().hex}), "", None
    form = TransferForm(request.POST)
    if not form.is_valid():
        return form, "", None
    data = form.cleaned_data
    with schema_context(org.schema_name):
        item = Item.objects.filter(pk=item_id).first()
        if item is None:
            raise Http404("No such item.")
        try:
            result = transfer_create(
                TransferInput(
                    item=item.sku,
                    qty=data["qty"].strip(),
                    from_location=data["from_location"],
                    to_location=data["to_location"],
                    from_lot=data["from_lot"] or None,
                    to_lot=data["to_lot"] or None,
                    reference=data["reference"],
                ),
                idempotency_key=data["idempotency_key"] or None,
                recorded_by=f"user:{request.user.get_username()}",
            )
        except InventoryError as err:
            for field, messages in err.fields.items():
                for message in messages:
                    form.add_error(field if field in form.fields else None, message)
            return form, err.message, None
    return TransferForm(initial={"idempotency_key": uuid.uuid4().hex}), "", result
