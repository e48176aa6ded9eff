"""The ninja API in process: keyset pages, counts only on request, query budgets, the docs
page without a CDN, JSON for unknown paths, a missing balance table and unexpected errors."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.staticfiles import finders
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from inventory.models import LedgerEntry, Posting
from inventory.services.posting import ledger_entries_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_acme(acme_key):
    return Client(HTTP_HOST="localhost", headers={"X-Api-Key": acme_key})


def post(client, path, data, **headers):
    return client.post(path, json.dumps(data), content_type="application/json", headers=headers)


def test_it_walks_items_by_cursor_and_counts_only_on_request(client_acme, catalog):
    items = catalog[0]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"page_size": 2} | ({"cursor": cursor} if cursor else {})
        body = client_acme.get("/api/items", params).json()
        assert body["count"] is None and body["pages"] is None
        seen += [i["sku"] for i in body["results"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(i.sku for i in items) and pages == 3  # 2 + 2 + 1, no empty page
    # Offset pages still work, with the total when asked.
    body = client_acme.get("/api/items", {"page": 3, "page_size": 2, "count": "true"}).json()
    assert (body["page"], body["count"], body["pages"]) == (3, 5, 3)
    assert [i["sku"] for i in body["results"]] == [items[4].sku]
    both = client_acme.get("/api/items", {"page": 1, "cursor": items[0].sku})
    assert both.status_code == 400 and set(both.json()["error"]["fields"]) == {"cursor"}


def test_it_walks_balances_and_locations_by_cursor(client_acme, catalog):
    items, locations, _ = catalog
    ledger_entries_create(
        entries=[
            {"item": i.sku, "location": loc.code, "qty": "1", "kind": "receipt"}
            for i in items
            for loc in locations
        ]
    )
    keys, cursor = [], None
    while True:
        body = client_acme.get(
            "/api/balances", {"page_size": 4} | ({"cursor": cursor} if cursor else {})
        ).json()
        keys += [(b["item"], b["location"]) for b in body["results"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(keys) == len(set(keys)) == 15
    first = client_acme.get("/api/locations", {"page_size": 2}).json()
    rest = client_acme.get("/api/locations", {"cursor": first["next_cursor"]}).json()
    codes = [x["code"] for x in first["results"] + rest["results"]]
    assert codes == sorted(loc.code for loc in locations) and rest["next_cursor"] is None


def _warm(client, path, params):
    for _ in range(2):
        assert client.get(path, params).status_code == 200


# Whole requests through every middleware (routing included), after warm-up.
QUERY_BUDGETS = [
    ("/api/balances", "keyed", 2),
    ("/api/items-enterprise", {}, 3),
    ("/api/items", {}, 2),
    ("/api/locations", {}, 2),
    ("/api/ledger", {}, 2),
    ("/api/ping", {}, 1),
]


@pytest.mark.parametrize("path,params,budget", QUERY_BUDGETS)
def test_it_answers_within_its_query_budget_and_counts_nothing(
    client_acme, catalog, path, params, budget
):
    items, locations, _ = catalog
    ledger_entries_create(
        entries=[{"item": items[0].sku, "location": locations[0].code, "qty": "3", "kind": "receipt"}]
    )
    if params == "keyed":
        params = {"item": items[0].sku, "location": locations[0].code, "lot": "none"}
    _warm(client_acme, path, params)
    with CaptureQueriesContext(connection) as ctx:
        response = client_acme.get(path, params)
    assert response.status_code == 200
    sql = [q["sql"] for q in ctx.captured_queries]
    assert len(sql) <= budget, sql
    assert not any("COUNT(" in q.upper() for q in sql), sql
    if path == "/api/balances":
        assert response.json()["results"][0]["qty"] == "3.000000"


def test_it_counts_when_asked(client_acme, catalog):
    with CaptureQueriesContext(connection) as ctx:
        body = client_acme.get("/api/balances", {"count": "true"}).json()
    assert body["count"] == 0
    assert sum("COUNT(" in q["sql"].upper() for q in ctx.captured_queries) == 1


def test_the_docs_page_loads_nothing_from_outside(api):
    response = api.get("/api/docs")  # the platform host, no credentials
    assert response.status_code == 200
    html = response.content.decode()
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls and all(u.startswith("/static/") for u in urls), urls
    for url in urls:
        assert finders.find(url.removeprefix("/static/")), url
    assert "cdn" not in html.lower() and "https://" not in html
    doc = api.get("/api/openapi.json")
    assert doc.status_code == 200 and "/api/ledger" in doc.json()["paths"]
    tenant_host = Client(HTTP_HOST="acme.localhost")
    assert tenant_host.get("/api/openapi.json").json() == doc.json()
    assert tenant_host.get("/api/docs").status_code == 200


def test_unknown_api_paths_are_json_404s(client_acme, in_acme):
    for path in ("/api/nope", "/api/", "/api/ledger/", "/api/items/1"):
        response = client_acme.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


def test_a_missing_balance_table_is_a_json_503_naming_the_repair(client_acme, catalog):
    with connection.cursor() as cursor:  # the guide's rollback by hand; the test rolls it back
        cursor.execute("DROP TRIGGER inventory_ledger_balance_trigger ON acme.inventory_ledger")
        cursor.execute("DROP FUNCTION acme.update_inventory_balance()")
        cursor.execute("DROP TABLE acme.inventory_balances")
    with connection.cursor() as cursor:
        cursor.execute("SAVEPOINT before_request")  # the request's error aborts the transaction
    response = client_acme.get("/api/items-enterprise")
    with connection.cursor() as cursor:
        cursor.execute("ROLLBACK TO SAVEPOINT before_request")
    assert client_acme.get("/api/balances").status_code == 503
    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {
        "error": {
            "code": "balances_unavailable",
            "message": "balances are not available for this organisation; run "
            "`manage.py repair_balances --schema acme`",
        }
    }


def test_a_missing_balance_table_refuses_a_posting_with_503(client_acme, catalog):
    items, locations, _ = catalog
    with connection.cursor() as cursor:  # table gone, trigger still there
        cursor.execute("DROP TABLE acme.inventory_balances CASCADE")
    entry = {"item": items[0].sku, "location": locations[0].code, "qty": "1", "kind": "receipt"}
    response = post(client_acme, "/api/ledger", entry)
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "balances_unavailable"


def test_an_unexpected_error_is_a_json_500_without_traceback(client_acme, in_acme, monkeypatch):
    from inventory import selectors

    def broken(**kwargs):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(selectors, "items_page", broken)
    response = client_acme.get("/api/items")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert b"secret detail" not in response.content and b"Traceback" not in response.content


def test_wrong_types_are_refused_not_coerced(client_acme, catalog):
    items, locations, _ = catalog
    entry = {"item": items[0].sku, "location": locations[0].code, "qty": "1", "kind": "receipt"}
    cases = [
        ({"entries": [entry], "idempotency_key": False}, "idempotency_key"),
        ({"entries": [entry | {"reference": []}]}, "entries[0].reference"),
        (entry | {"reference": []}, "entries[0].reference"),
        (entry | {"qty": True}, "entries[0].qty"),
        (entry | {"item": 5}, "entries[0].item"),
        (entry | {"lot": False}, "entries[0].lot"),
        ({"entries": [entry, entry | {"kind": 1}]}, "entries[1].kind"),
        (entry | {"extra": 1}, "entries[0].extra"),
        ([entry], "body"),
    ]
    for body, field in cases:
        response = post(client_acme, "/api/ledger", body)
        assert response.status_code == 400, (body, response.content)
        assert response.json()["error"]["code"] == "validation_failed"
        assert field in response.json()["error"]["fields"], (field, response.json())
    item = post(client_acme, "/api/items", {"sku": ["X"], "name": "n", "unit": "g"})
    assert item.status_code == 400 and set(item.json()["error"]["fields"]) == {"sku"}
    assert LedgerEntry.objects.count() == 0 and Posting.objects.count() == 0


@pytest.mark.parametrize("debug", [False, True])
def test_a_too_large_body_is_the_apis_413_with_debug_on_or_off(client_acme, catalog, settings, debug):
    """The NUL/JSON-depth middleware reads the body first: with DEBUG on (make run) its
    RequestDataTooBig became Django's 400 debug page, not the API's answer."""
    settings.DEBUG = debug
    body = b'{"entries": [' + b" " * 3_000_000 + b"]}"
    response = client_acme.post("/api/ledger", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert LedgerEntry.objects.count() == 0 and Posting.objects.count() == 0
