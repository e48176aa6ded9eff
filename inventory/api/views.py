"""The tenant API's operations: typed input in, a selector or service called, typed output back.
Routing and access are settled by the middleware before these run."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Body, Header, Query, Router, Status

from inventory import selectors
from inventory.api import schemas as s
from inventory.api.errors import ApiError
from inventory.api.http import recorded_by
from inventory.services.catalog import item_create, location_create
from inventory.services.ledger_rows import LedgerRowInput
from inventory.services.posting import ledger_entries_create
from inventory.services.transfers import TransferInput, transfer_create

router = Router()

# Statuses every tenant operation can answer (401/403/404 and a malformed X-Org-Id come from the
# routing middleware; 503 when the organisation's balance objects are missing).
IDEMPOTENCY_HEADER = Header(None, alias="Idempotency-Key")
COMMON = {code: s.ErrorOut for code in (400, 401, 403, 404, 500, 503)}


def _page_request(q: s.PageQuery) -> selectors.PageRequest:
    if q.page is not None and getattr(q, "cursor", None) is not None:
        raise ApiError(
            400,
            "validation_failed",
            "Use either page or cursor.",
            {"cursor": ["not with page"]},
        )
    return selectors.PageRequest(
        size=q.page_size, cursor=getattr(q, "cursor", None), page=q.page, with_count=q.count
    )


def _page(
    page_schema, row_schema, result: selectors.PageResult, req: selectors.PageRequest, **extra
):
    pages = None if result.count is None else max(1, -(-result.count // req.size))
    return page_schema.model_construct(
        page=req.page,
        page_size=req.size,
        count=result.count,
        pages=pages,
        next_cursor=result.next_cursor,
        results=[row_schema.of(row) for row in result.rows],
        **extra,
    )


@router.get("/ping", response={200: s.PingOut, **COMMON}, summary="Trivial view (no database)")
def ping(request: HttpRequest):
    return s.PingOut.model_construct(ok=True, organization=request.tenant.slug)


@router.get(
    "/items-enterprise",
    response={200: s.ItemsOnHandPage, **COMMON},
    summary="Items with on-hand totals from the balance table",
)
def items_enterprise(request: HttpRequest, q: Query[s.ItemsQuery]):
    req = _page_request(q)
    result = selectors.items_with_on_hand_page(search=q.search, req=req)
    return _page(s.ItemsOnHandPage, s.ItemOnHandOut, result, req, organization=request.tenant.slug)


@router.get("/items", response={200: s.ItemsPage, **COMMON}, summary="List items")
def items_list(request: HttpRequest, q: Query[s.ItemsQuery]):
    req = _page_request(q)
    return _page(s.ItemsPage, s.ItemOut, selectors.items_page(search=q.search, req=req), req)


@router.post("/items", response={201: s.ItemOut, **COMMON}, summary="Create an item")
def items_create(request: HttpRequest, payload: s.ItemIn):
    item = item_create(sku=payload.sku, name=payload.name, unit=payload.unit)
    return Status(201, s.ItemOut.of(item))


@router.get("/locations", response={200: s.LocationsPage, **COMMON}, summary="List locations")
def locations_list(request: HttpRequest, q: Query[s.CodeCursorQuery]):
    req = _page_request(q)
    return _page(s.LocationsPage, s.LocationOut, selectors.locations_page(req=req), req)


@router.post("/locations", response={201: s.LocationOut, **COMMON}, summary="Create a location")
def locations_create(request: HttpRequest, payload: s.LocationIn):
    location = location_create(code=payload.code, name=payload.name, site=payload.site)
    return Status(201, s.LocationOut.of(location))


@router.get(
    "/balances",
    response={200: s.BalancesPage, **COMMON},
    summary="Balances, filtered by item, location and lot",
)
def balances_list(request: HttpRequest, q: Query[s.BalancesQuery]):
    req = _page_request(q)
    filters = selectors.BalanceFilters(q.item or "", q.location or "", q.lot or "")
    if q.as_of is not None:
        result = selectors.balances_as_of_page(filters=filters, as_of=q.as_of, req=req)
    else:
        result = selectors.balances_page(filters=filters, req=req)
    return _page(s.BalancesPage, s.BalanceOut, result, req)


@router.get(
    "/ledger",
    response={200: s.LedgerPage, **COMMON},
    summary="Ledger entries, newest first, keyset-paged",
)
def ledger_list(request: HttpRequest, q: Query[s.LedgerQuery]):
    filters = selectors.LedgerFilters(
        item=q.item or "",
        location=q.location or "",
        lot=q.lot or "",
        kind=q.kind or "",
        since=q.since,
        until=q.until,
        cursor=q.cursor,
        limit=q.limit,
    )
    result = selectors.ledger_page(filters=filters)
    return s.LedgerPage.model_construct(
        results=[s.LedgerEntryOut.of(e) for e in result.rows],
        next_cursor=result.next_cursor,
        limit=q.limit,
    )


@router.post(
    "/ledger",
    response={200: s.PostingOut, 201: s.PostingOut, 409: s.ErrorOut, **COMMON},
    summary="Post one entry, or a batch (all or nothing)",
    description=(
        "201 when posted; 200 when a retry with the same idempotency key returned the original "
        "entries; 409 when that key was used with a different payload (idempotency_conflict), "
        "or when the organisation refuses negative stock and a balance would go below zero "
        "(insufficient_stock, with shortfalls; nothing is posted)."
    ),
)
def ledger_post(
    request: HttpRequest,
    payload: Body[s.PostingIn],
    idempotency_key: s.IdempotencyKey | None = IDEMPOTENCY_HEADER,
):
    if isinstance(payload, s.BatchIn):
        entries = payload.entries
        idempotency_key = idempotency_key or payload.idempotency_key
    else:
        entries = [payload]
    result = ledger_entries_create(
        entries=[LedgerRowInput(**e.model_dump()) for e in entries],
        idempotency_key=idempotency_key,
        recorded_by=recorded_by(request),
    )
    body = s.PostingOut.model_construct(
        posting_id=result.posting.id,
        replayed=result.replayed,
        entries=[s.LedgerEntryOut.of(e) for e in result.entries],
    )
    return Status(200 if result.replayed else 201, body)


def _posting_out(result) -> s.PostingOut:
    return s.PostingOut.model_construct(
        posting_id=result.posting.id,
        replayed=result.replayed,
        entries=[s.LedgerEntryOut.of(e) for e in result.entries],
    )


@router.post(
    "/transfers",
    response={200: s.PostingOut, 201: s.PostingOut, 409: s.ErrorOut, **COMMON},
    summary="Transfer stock between locations or lots (one posting, two legs)",
    description=(
        "One posting of two entries, transfer_out (-qty at from_location/from_lot) and "
        "transfer_in (+qty at to_location/to_lot), all or nothing, with one idempotency key "
        "(header or body). 400 naming the field for a transfer of zero, to the same location "
        "and lot, or to another item (or unit); 201 when posted, 200 for a replay, 409 for a "
        "reused key or insufficient stock under the no-negative policy."
    ),
)
def transfers_post(
    request: HttpRequest,
    payload: s.TransferIn,
    idempotency_key: s.IdempotencyKey | None = IDEMPOTENCY_HEADER,
):
    data = payload.model_dump()
    body_key = data.pop("idempotency_key")
    key = idempotency_key or body_key
    result = transfer_create(
        TransferInput(**data), idempotency_key=key, recorded_by=recorded_by(request)
    )
    return Status(200 if result.replayed else 201, _posting_out(result))
