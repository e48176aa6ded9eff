"""The tenant JSON API. Routing and access (a key of the organisation or a member) are settled by
the middleware before these views run; the views parse input and call selectors and services."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import wraps

from django.http import HttpRequest, JsonResponse

from inventory import selectors
from inventory.services.catalog import item_create, location_create
from inventory.services.errors import InventoryError, ValidationFailed
from inventory.services.posting import ledger_entries_create

MAX_BODY_BYTES = 2 * 1024 * 1024


def api_view(*methods: str):
    """JSON in and out: 405 for other methods, InventoryError → its status with field messages."""

    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if request.method not in methods:
                response = error(405, "method_not_allowed", f"Use {' or '.join(methods)}.")
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except InventoryError as err:
                return JsonResponse({"error": err.as_dict()}, status=err.status)

        return wrapper

    return decorator


def error(status: int, code: str, message: str, fields: dict | None = None) -> JsonResponse:
    body = {"code": code, "message": message} | ({"fields": fields} if fields else {})
    return JsonResponse({"error": body}, status=status)


def json_body(request: HttpRequest):
    if len(request.body) > MAX_BODY_BYTES:
        raise ValidationFailed(f"The body is larger than {MAX_BODY_BYTES} bytes.")
    if not request.content_type or "json" not in request.content_type:
        raise ValidationFailed("Send a JSON body with Content-Type: application/json.")
    try:
        # Decimals, never floats: quantities stay exact.
        return json.loads(request.body or b"null", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValidationFailed(f"The body is not valid JSON: {err}") from None


def recorded_by(request: HttpRequest) -> str:
    if getattr(request, "api_key", None) is not None:
        return f"key:{request.api_key.label}"
    return f"user:{request.user.get_username()}"


@api_view("GET")
def items_enterprise(request):
    page = selectors.Page.from_query(request.GET)
    result = selectors.items_with_on_hand(search=request.GET.get("search", ""), page=page)
    return JsonResponse({"organization": request.tenant.slug, **result})


@api_view("GET", "POST")
def items(request):
    if request.method == "POST":
        data = json_body(request)
        if not isinstance(data, dict):
            raise ValidationFailed("Send an object with sku, name and unit.")
        item = item_create(sku=data.get("sku"), name=data.get("name"), unit=data.get("unit"))
        return JsonResponse(selectors.item_dict(item), status=201)
    page = selectors.Page.from_query(request.GET)
    return JsonResponse(selectors.items_list(search=request.GET.get("search", ""), page=page))


@api_view("GET", "POST")
def locations(request):
    if request.method == "POST":
        data = json_body(request)
        if not isinstance(data, dict):
            raise ValidationFailed("Send an object with code, name and (optionally) site.")
        location = location_create(
            code=data.get("code"), name=data.get("name"), site=data.get("site", "")
        )
        return JsonResponse(selectors.location_dict(location), status=201)
    page = selectors.Page.from_query(request.GET)
    return JsonResponse(selectors.locations_list(page=page))


@api_view("GET")
def balances(request):
    page = selectors.Page.from_query(request.GET)
    filters = selectors.BalanceFilters.from_query(request.GET)
    return JsonResponse(selectors.balances_list(filters=filters, page=page))


@api_view("GET", "POST")
def ledger(request):
    if request.method == "POST":
        return _ledger_post(request)
    filters = selectors.LedgerFilters.from_query(request.GET)
    return JsonResponse(selectors.ledger_page(filters=filters))


def _ledger_post(request):
    data = json_body(request)
    key = request.headers.get("Idempotency-Key")
    if isinstance(data, dict) and "entries" in data:
        entries = data["entries"]
        key = key or data.get("idempotency_key")
        extra = set(data) - {"entries", "idempotency_key"}
        if extra:
            raise ValidationFailed(f"Unknown field(s): {', '.join(sorted(extra))}.")
    elif isinstance(data, dict):
        entries = [data]
    else:
        raise ValidationFailed('Send one entry object, or {"entries": [...]} for a batch.')
    result = ledger_entries_create(
        entries=entries, idempotency_key=key, recorded_by=recorded_by(request)
    )
    body = {
        "posting_id": result.posting.id,
        "replayed": result.replayed,
        "entries": [selectors.ledger_entry_dict(e) for e in result.entries],
    }
    return JsonResponse(body, status=200 if result.replayed else 201)
