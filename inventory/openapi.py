"""OpenAPI 3 description of the tenant API, kept next to the views (tests check that every
documented path and method exists and that every API route is documented)."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from inventory.models import MovementKind, Unit

ERROR = {"$ref": "#/components/schemas/Error"}


def _err(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def _ok(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _q(name: str, description: str, schema_type: str = "string") -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": schema_type},
    }


PAGE_PARAMS = [
    _q("page", "page number, from 1", "integer"),
    _q("page_size", "rows per page, 1-200", "integer"),
]
COMMON_ERRORS = {
    "400": _err("invalid input"),
    "401": _err("no or bad credentials"),
    "403": _err("inactive organisation, key of another organisation, or not a member"),
    "404": _err("unknown organisation"),
}


def _paged(item_ref: str) -> dict:
    return {
        "type": "object",
        "properties": {
            "page": {"type": "integer"},
            "page_size": {"type": "integer"},
            "count": {"type": "integer"},
            "pages": {"type": "integer"},
            "results": {"type": "array", "items": {"$ref": item_ref}},
        },
    }


def document() -> dict:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Inventory Enterprise API",
            "version": "1.0.0",
            "description": "Tenant API. Select the organisation with X-Org-Id, the subdomain or the API key.",
        },
        "servers": [{"url": "/api"}],
        "security": [{"ApiKey": []}, {"Bearer": []}],
        "paths": {
            "/items-enterprise": {
                "get": {
                    "summary": "Items with on-hand totals from the balance table",
                    "parameters": [_q("search", "substring of SKU or name"), *PAGE_PARAMS],
                    "responses": {
                        "200": _ok("a page of items", _paged("#/components/schemas/ItemOnHand")),
                        **COMMON_ERRORS,
                    },
                }
            },
            "/items": {
                "get": {
                    "summary": "List items",
                    "parameters": [_q("search", "substring of SKU or name"), *PAGE_PARAMS],
                    "responses": {
                        "200": _ok("a page of items", _paged("#/components/schemas/Item")),
                        **COMMON_ERRORS,
                    },
                },
                "post": {
                    "summary": "Create an item",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ItemCreate"}
                            }
                        },
                    },
                    "responses": {
                        "201": _ok("created", {"$ref": "#/components/schemas/Item"}),
                        **COMMON_ERRORS,
                    },
                },
            },
            "/locations": {
                "get": {
                    "summary": "List locations",
                    "parameters": PAGE_PARAMS,
                    "responses": {
                        "200": _ok("a page of locations", _paged("#/components/schemas/Location")),
                        **COMMON_ERRORS,
                    },
                },
                "post": {
                    "summary": "Create a location",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/LocationCreate"}
                            }
                        },
                    },
                    "responses": {
                        "201": _ok("created", {"$ref": "#/components/schemas/Location"}),
                        **COMMON_ERRORS,
                    },
                },
            },
            "/balances": {
                "get": {
                    "summary": "Balances per (item, location, lot)",
                    "parameters": [
                        _q("item", "SKU"),
                        _q("location", "location code"),
                        _q("lot", "lot code, or 'none'"),
                        *PAGE_PARAMS,
                    ],
                    "responses": {
                        "200": _ok("a page of balances", _paged("#/components/schemas/Balance")),
                        **COMMON_ERRORS,
                    },
                }
            },
            "/ledger": {
                "get": {
                    "summary": "Ledger entries, newest first, cursor-paginated",
                    "parameters": [
                        _q("item", "SKU"),
                        _q("location", "location code"),
                        _q("lot", "lot code, or 'none'"),
                        _q("kind", "movement kind"),
                        _q("since", "occurred at or after (ISO 8601)"),
                        _q("until", "occurred before (ISO 8601)"),
                        _q("cursor", "next_cursor of the previous page", "integer"),
                        _q("limit", "1-500, default 100", "integer"),
                    ],
                    "responses": {
                        "200": _ok(
                            "a page of entries",
                            {
                                "type": "object",
                                "properties": {
                                    "results": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/LedgerEntry"},
                                    },
                                    "next_cursor": {"type": "integer", "nullable": True},
                                    "limit": {"type": "integer"},
                                },
                            },
                        ),
                        **COMMON_ERRORS,
                    },
                },
                "post": {
                    "summary": "Post one entry or a batch (all or nothing)",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "maxLength": 200},
                            "description": "a retry with the same key and payload returns the original entries (200)",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/EntryInput"},
                                        {
                                            "type": "object",
                                            "required": ["entries"],
                                            "properties": {
                                                "entries": {
                                                    "type": "array",
                                                    "items": {
                                                        "$ref": "#/components/schemas/EntryInput"
                                                    },
                                                },
                                                "idempotency_key": {"type": "string"},
                                            },
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _ok("posted", {"$ref": "#/components/schemas/PostingResult"}),
                        "200": _ok(
                            "replayed: the original entries",
                            {"$ref": "#/components/schemas/PostingResult"},
                        ),
                        "409": _err("idempotency key reused with a different payload"),
                        **COMMON_ERRORS,
                    },
                },
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI 3 document"}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "fields": {
                                    "type": "object",
                                    "additionalProperties": {
                                        "type": "array",
                                        "items": {"type": "string"},
                                    },
                                },
                            },
                        }
                    },
                },
                "Item": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "sku": {"type": "string"},
                        "name": {"type": "string"},
                        "unit": {"type": "string", "enum": Unit.values},
                        "active": {"type": "boolean"},
                    },
                },
                "ItemOnHand": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Item"},
                        {
                            "type": "object",
                            "properties": {
                                "on_hand": {
                                    "type": "string",
                                    "description": "decimal, canonical unit",
                                }
                            },
                        },
                    ]
                },
                "ItemCreate": {
                    "type": "object",
                    "required": ["sku", "name", "unit"],
                    "properties": {
                        "sku": {"type": "string"},
                        "name": {"type": "string"},
                        "unit": {"type": "string", "enum": Unit.values},
                    },
                },
                "Location": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "code": {"type": "string"},
                        "name": {"type": "string"},
                        "site": {"type": "string"},
                        "active": {"type": "boolean"},
                    },
                },
                "LocationCreate": {
                    "type": "object",
                    "required": ["code", "name"],
                    "properties": {
                        "code": {"type": "string"},
                        "name": {"type": "string"},
                        "site": {"type": "string"},
                    },
                },
                "Balance": {
                    "type": "object",
                    "properties": {
                        "item": {"type": "string"},
                        "location": {"type": "string"},
                        "lot": {"type": "string", "nullable": True},
                        "qty": {"type": "string"},
                        "unit": {"type": "string"},
                        "last_ledger_id": {"type": "integer"},
                        "updated_at": {"type": "string", "format": "date-time"},
                    },
                },
                "EntryInput": {
                    "type": "object",
                    "required": ["item", "location", "qty", "kind"],
                    "properties": {
                        "item": {"type": "string", "description": "SKU"},
                        "location": {"type": "string", "description": "location code"},
                        "lot": {"type": "string", "nullable": True},
                        "qty": {
                            "type": "string",
                            "description": "non-zero decimal, at most 6 places, 12 integer digits",
                        },
                        "kind": {"type": "string", "enum": MovementKind.values},
                        "reference": {"type": "string", "maxLength": 200},
                        "occurred_at": {"type": "string", "format": "date-time"},
                    },
                },
                "LedgerEntry": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "item": {"type": "string"},
                        "location": {"type": "string"},
                        "lot": {"type": "string", "nullable": True},
                        "qty": {"type": "string"},
                        "kind": {"type": "string"},
                        "reference": {"type": "string"},
                        "occurred_at": {"type": "string", "format": "date-time"},
                        "recorded_at": {"type": "string", "format": "date-time"},
                        "recorded_by": {"type": "string"},
                        "posting_id": {"type": "integer", "nullable": True},
                    },
                },
                "PostingResult": {
                    "type": "object",
                    "properties": {
                        "posting_id": {"type": "integer"},
                        "replayed": {"type": "boolean"},
                        "entries": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/LedgerEntry"},
                        },
                    },
                },
            },
        },
    }


@require_GET
def openapi_json(request):
    return JsonResponse(document())
