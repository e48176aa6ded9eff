"""Balance browser for owners (and platform admins): filters, sorting, server-side pages, a
CSV export of exactly the filtered view (streamed, or for a big view written by a background job
and downloaded; inventory/services/balance_export.py), and an item's page with its ledger
history."""

from __future__ import annotations

import base64
import uuid
from urllib.parse import urlencode

from django.conf import settings
from django.core.paginator import Paginator
from django.db import connection
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_tenants.utils import schema_context

from inventory.forms import (
    HISTORY_PAGE,
    SORTS,
    BalanceFilterForm,
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
from inventory.selectors import with_qty_as_of
from inventory.services.balance_export import (
    balance_export_blocks,
    balance_export_count,
    balance_rows,
    export_file_open,
    export_file_ready,
)
from inventory.services.errors import InventoryError
from inventory.services.stock_policy import policy_set
from inventory.services.transfers import TransferInput, transfer_create
from operations.dispatch import job_start
from operations.jobs import job_run_reap
from operations.models import JobRun
from tenants.access import OWNER_ROLES, SUPPORT_ROLES, org_or_404, page_login_required

# Support reviews discrepancies, which link to the item: it may read an item's page, not browse.
ITEM_ROLES = tuple(dict.fromkeys(OWNER_ROLES + SUPPORT_ROLES))

PAGE_SIZE = 50


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
    # A view too big to stream gets the background export's button and its latest run.
    export_in_background = total > settings.EXPORT_STREAM_MAX_ROWS
    export_job = (
        JobRun.objects.filter(kind=JobRun.Kind.EXPORT, schema_name=org.schema_name).first()
        if export_in_background
        else None
    )
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
            "export_in_background": export_in_background,
            "export_stream_max": settings.EXPORT_STREAM_MAX_ROWS,
            "export_job": export_job,
            "export_ready": export_job is not None
            and export_file_ready(org.schema_name, export_job),
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


def _errors_text(form) -> str:
    return "".join(
        f"{form.fields[name].label}: {message}\n"
        for name, messages in form.errors.items()
        for message in messages
    )


def _text(message: str, status: int) -> HttpResponse:
    # text/plain (and nosniff): the messages quote the refused value.
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


@page_login_required
@require_GET
def balances_csv(request, slug: str) -> HttpResponse:
    """Exactly the rows of the filtered view (all pages), streamed so memory stays flat. The same
    form as the page: a bad filter is a 400 and no file (a file of other rows than asked for would
    pass for the asked ones). A view of more than EXPORT_STREAM_MAX_ROWS rows is a 409: the page
    offers a background export for it (export_start), downloaded whole with its length."""
    org = org_or_404(request.user, slug, OWNER_ROLES)
    form = BalanceFilterForm(request.GET)
    if not form.is_valid():
        return _text(_errors_text(form), 400)
    query = form.query()
    with schema_context(org.schema_name):
        count = balance_export_count(query)
    if count > settings.EXPORT_STREAM_MAX_ROWS:
        return _text(
            f"This view has {count} rows, more than the {settings.EXPORT_STREAM_MAX_ROWS} a "
            "download streams. Use Export CSV on the balances page: the file is prepared in "
            "the background and downloaded when it is ready.\n",
            409,
        )

    def blocks():
        # The response streams after the view returns: enter the schema inside the generator.
        with schema_context(org.schema_name):
            yield from balance_export_blocks(query)

    # No Content-Length, on purpose: HTTP/1.1 then gets the body chunked (gunicorn), and a
    # worker killed or timed out mid-stream ends it without the last chunk, which every client
    # reports as an error (tests/inventory/test_export_live.py). A length promised before the
    # rows are read could not be kept if the rows change meanwhile.
    response = StreamingHttpResponse(blocks(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{org.slug}-balances.csv"'
    return response


def _export_run_or_404(org, job_id: int) -> JobRun:
    """The organisation's own export run; any other run (another tenant's, another kind) is a
    404, as an unknown one is."""
    job = JobRun.objects.filter(
        pk=job_id, kind=JobRun.Kind.EXPORT, schema_name=org.schema_name
    ).first()
    if job is None:
        raise Http404("No such export.")
    if job.is_active:
        job_run_reap(job)  # a dead worker's run turns "interrupted" here
    return job


def _export_job_response(request, org, job: JobRun, status: int = 200) -> HttpResponse:
    context = {"org": org, "job": job, "ready": export_file_ready(org.schema_name, job)}
    if request.headers.get("HX-Request"):
        response = render(request, "inventory/_export_job.html", context, status=status)
    else:
        response = render(request, "inventory/export.html", context, status=status)
    if job.status in JobRun.TERMINAL:
        response["HX-Trigger"] = "job-finished"
    return response


@page_login_required
@require_POST
def export_start(request, slug: str) -> HttpResponse:
    """Queue a background export of the filtered view (the query string holds the filters, as
    for balances.csv). One export per organisation at a time: a second start while one is
    queued or running is a 409 showing that one."""
    org = org_or_404(request.user, slug, OWNER_ROLES)
    form = BalanceFilterForm(request.GET)
    if not form.is_valid():
        return _text(_errors_text(form), 400)
    job = job_start(
        kind=JobRun.Kind.EXPORT,
        schema_name=org.schema_name,
        requested_by=f"user:{request.user.get_username()}",
        query=form.query().as_params(),
    )
    if getattr(job, "refused", False):
        return _export_job_response(request, org, job, status=409)
    if request.headers.get("HX-Request"):
        return _export_job_response(request, org, job, status=202)
    return HttpResponse(
        status=303, headers={"Location": reverse("export_status", args=[slug, job.id])}
    )


@page_login_required
@require_GET
def export_status(request, slug: str, job_id: int) -> HttpResponse:
    org = org_or_404(request.user, slug, OWNER_ROLES)
    return _export_job_response(request, org, _export_run_or_404(org, job_id))


@page_login_required
@require_GET
def export_download(request, slug: str, job_id: int) -> HttpResponse:
    """The finished file, with its Content-Length (a cut-off download is visible as one) and
    its SHA-256 (Repr-Digest). Only a succeeded run's file whose size is the recorded one."""
    org = org_or_404(request.user, slug, OWNER_ROLES)
    job = _export_run_or_404(org, job_id)
    if job.is_active:
        return _text(f"Export {job.id} is {job.status}: the file is not ready yet.\n", 409)
    if job.status != JobRun.Status.SUCCEEDED:
        return _text(f"Export {job.id} is {job.status}: it wrote no file. Start it again.\n", 410)
    handle = export_file_open(org.schema_name, job.result)
    if handle is None:
        return _text(
            f"Export {job.id}'s file is gone (exports are kept {settings.EXPORT_MAX_AGE_HOURS} "
            "h) or not whole. Start it again.\n",
            410,
        )
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=f"{org.slug}-balances.csv",
        content_type="text/csv; charset=utf-8",
    )
    digest = base64.b64encode(bytes.fromhex(job.result["sha256"])).decode()
    response["Repr-Digest"] = f"sha-256=:{digest}:"
    response["Cache-Control"] = "private, no-store"
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
