"""The tenant API end to end through routing, with outsiders refused."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from inventory.models import Item, LedgerEntry, Posting
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_acme(acme_key):
    return Client(HTTP_HOST="acme.localhost", headers={"X-Api-Key": acme_key})


def post(client, path, data, **headers):
    return client.post(path, json.dumps(data), content_type="application/json", headers=headers)


def seed(client, cat):
    items, locations, lots = cat
    body = {
        "entries": [
            {"item": items[0].sku, "location": locations[0].code, "qty": "10", "kind": "receipt"},
            {
                "item": items[0].sku,
                "location": locations[1].code,
                "lot": lots[0].code,
                "qty": "2.5",
                "kind": "receipt",
            },
            {"item": items[1].sku, "location": locations[0].code, "qty": "-4", "kind": "issue"},
        ]
    }
    response = post(client, "/api/ledger", body)
    assert response.status_code == 201, response.content
    return response.json()


def test_it_posts_a_batch_and_reads_it_back(client_acme, catalog):
    body = seed(client_acme, catalog)
    assert [e["qty"] for e in body["entries"]] == ["10.000000", "2.500000", "-4.000000"]
    assert body["entries"][0]["recorded_by"] == "key:acme tests"
    items = client_acme.get("/api/items-enterprise", {"search": catalog[0][0].sku}).json()
    assert items["results"][0]["on_hand"] == "12.500000"
    balances = client_acme.get("/api/balances", {"item": catalog[0][0].sku}).json()
    assert len(balances["results"]) == 2 and balances["count"] is None  # no total unless asked
    counted = client_acme.get("/api/balances", {"lot": "none", "count": "true"}).json()
    assert (counted["count"], counted["pages"]) == (2, 1)


def test_it_posts_a_single_entry_with_an_exact_decimal(client_acme, catalog):
    items, locations, _ = catalog
    response = client_acme.post(
        "/api/ledger",
        f'{{"item": "{items[0].sku}", "location": "{locations[0].code}", "qty": 0.1, "kind": "receipt"}}',
        content_type="application/json",
    )
    assert response.status_code == 201
    assert LedgerEntry.objects.get().qty_canonical == Decimal("0.1")


def test_it_replays_and_conflicts_on_idempotency_keys(client_acme, catalog):
    items, locations, _ = catalog
    entry = {"item": items[0].sku, "location": locations[0].code, "qty": "1", "kind": "receipt"}
    first = post(client_acme, "/api/ledger", entry, **{"Idempotency-Key": "abc"})
    again = post(client_acme, "/api/ledger", entry, **{"Idempotency-Key": "abc"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["replayed"] is True
    assert again.json()["entries"] == first.json()["entries"]
    conflict = post(client_acme, "/api/ledger", entry | {"qty": "2"}, **{"Idempotency-Key": "abc"})
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    assert LedgerEntry.objects.count() == 1


def test_it_returns_field_errors_as_json(client_acme, catalog):
    response = post(
        client_acme,
        "/api/ledger",
        {"entries": [{"item": "NOPE", "location": "X", "qty": "NaN", "kind": "x"}]},
    )
    assert response.status_code == 400
    # The shape of every field first (no query runs), then what needs the database.
    assert set(response.json()["error"]["fields"]) == {"entries[0].qty", "entries[0].kind"}
    response = post(
        client_acme,
        "/api/ledger",
        {"entries": [{"item": "NOPE", "location": "X", "qty": "1", "kind": "receipt"}]},
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"entries[0].item", "entries[0].location"}
    assert (
        client_acme.post("/api/ledger", "{not json", content_type="application/json").status_code
        == 400
    )
    assert (
        client_acme.post("/api/ledger", "a=b", content_type="text/plain").json()["error"]["code"]
        == "validation_failed"
    )
    assert client_acme.get("/api/ledger", {"limit": "lots"}).json()["error"]["fields"] == {
        "limit": ["must be a whole number"]
    }
    assert client_acme.get("/api/balances", {"page_size": 1000}).status_code == 400
    assert client_acme.delete("/api/ledger").status_code == 405


def test_it_pages_the_ledger_by_cursor_newest_first(client_acme, catalog):
    items, locations, _ = catalog
    post(
        client_acme,
        "/api/ledger",
        {
            "entries": [
                {
                    "item": items[0].sku,
                    "location": locations[0].code,
                    "qty": str(n),
                    "kind": "receipt",
                }
                for n in range(1, 8)
            ]
        },
    )
    page1 = client_acme.get("/api/ledger", {"limit": 3}).json()
    page2 = client_acme.get("/api/ledger", {"limit": 3, "cursor": page1["next_cursor"]}).json()
    page3 = client_acme.get("/api/ledger", {"limit": 3, "cursor": page2["next_cursor"]}).json()
    qtys = [e["qty"] for p in (page1, page2, page3) for e in p["results"]]
    assert qtys == [f"{n}.000000" for n in range(7, 0, -1)]
    assert page3["next_cursor"] is None
    assert client_acme.get("/api/ledger", {"item": "NOPE"}).json()["results"] == []
    assert (
        len(
            client_acme.get("/api/ledger", {"kind": "receipt", "item": items[0].sku}).json()[
                "results"
            ]
        )
        == 7
    )


def test_it_creates_and_lists_items_and_locations(client_acme, in_acme):
    created = post(client_acme, "/api/items", {"sku": "FLOUR-1", "name": "Flour", "unit": "g"})
    assert created.status_code == 201 and created.json()["sku"] == "FLOUR-1"
    duplicate = post(client_acme, "/api/items", {"sku": "FLOUR-1", "name": "Flour", "unit": "g"})
    assert (
        duplicate.status_code == 400
        and "already exists" in duplicate.json()["error"]["fields"]["sku"][0]
    )
    bad = post(client_acme, "/api/items", {"sku": "", "name": "", "unit": "kg"})
    assert set(bad.json()["error"]["fields"]) == {"sku", "name", "unit"}
    assert (
        post(client_acme, "/api/locations", {"code": "BIN-1", "name": "Bin 1"}).status_code == 201
    )
    assert client_acme.get("/api/items", {"count": "true"}).json()["count"] == 1
    assert client_acme.get("/api/locations").json()["results"][0]["code"] == "BIN-1"


def written(schema: str) -> tuple[int, int, int]:
    """Ledger rows, postings and items in `schema`, whatever schema a request left behind."""
    with schema_context(schema):
        return LedgerEntry.objects.count(), Posting.objects.count(), Item.objects.count()


def test_a_globex_key_cannot_read_or_post_to_acme(globex_key, catalog):
    items, locations, _ = catalog
    entry = {"item": items[0].sku, "location": locations[0].code, "qty": "1", "kind": "receipt"}
    before = written("acme"), written("globex")
    for client in (
        Client(HTTP_HOST="acme.localhost"),
        Client(HTTP_HOST="localhost", headers={"X-Org-Id": "acme"}),
    ):
        response = client.get("/api/balances", headers={"X-Api-Key": globex_key})
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "key_wrong_organization"
        response = post(client, "/api/ledger", entry, **{"X-Api-Key": globex_key})
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "key_wrong_organization"
    # The key alone routes to globex, where acme's SKUs do not exist.
    response = post(
        Client(HTTP_HOST="localhost"), "/api/ledger", entry, **{"X-Api-Key": globex_key}
    )
    assert (
        response.status_code == 400
        and "unknown item" in response.json()["error"]["fields"]["entries[0].item"][0]
    )
    assert (written("acme"), written("globex")) == before


def test_a_globex_member_cannot_read_or_post_to_acme(globex_owner, catalog):
    client = Client(HTTP_HOST="localhost", headers={"X-Org-Id": "acme"})
    client.login(username="globex-owner", password=PASSWORD)
    before = written("acme"), written("globex")
    response = client.get("/api/ledger")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_a_member"
    response = post(client, "/api/items", {"sku": "X1", "name": "X", "unit": "g"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_a_member"
    items, locations, _ = catalog
    entry = {"item": items[0].sku, "location": locations[0].code, "qty": "1", "kind": "receipt"}
    response = post(client, "/api/ledger", entry)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_a_member"
    assert (written("acme"), written("globex")) == before


def test_an_acme_member_session_can_post_with_csrf(acme_owner, catalog):
    items, locations, _ = catalog
    client = Client(HTTP_HOST="acme.localhost", enforce_csrf_checks=True)
    client.login(username="acme-owner", password=PASSWORD)
    entry = {"item": items[0].sku, "location": locations[0].code, "qty": "1", "kind": "receipt"}
    assert post(client, "/api/ledger", entry).status_code == 403  # no CSRF token
    client.get("/orgs/")  # any page with a form sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = post(client, "/api/ledger", entry, **{"X-CSRFToken": token})
    assert response.status_code == 201
    assert response.json()["entries"][0]["recorded_by"] == "user:acme-owner"


DOCUMENTED_ANSWERS = {
    ("/ping", "get"): (200, None),
    ("/items-enterprise", "get"): (200, None),
    ("/items", "get"): (200, None),
    ("/items", "post"): (400, "validation_failed"),  # "{}": sku and name missing
    ("/locations", "get"): (200, None),
    ("/locations", "post"): (400, "validation_failed"),
    ("/balances", "get"): (200, None),
    ("/ledger", "get"): (200, None),
    ("/ledger", "post"): (400, "validation_failed"),
    ("/transfers", "post"): (400, "validation_failed"),  # "{}": item, qty, locations missing
}


def test_the_openapi_document_covers_every_route_and_method(api, client_acme, in_acme):
    doc = api.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    paths = {p.removeprefix("/api"): set(ops) for p, ops in doc["paths"].items()}
    assert paths == {
        "/ping": {"get"},
        "/items-enterprise": {"get"},
        "/items": {"get", "post"},
        "/locations": {"get", "post"},
        "/balances": {"get"},
        "/ledger": {"get", "post"},
        "/transfers": {"post"},
    }
    for path, documented in paths.items():
        for method in ("get", "post", "put", "patch", "delete"):
            if method == "get":
                response = client_acme.get("/api" + path)
            else:
                response = getattr(client_acme, method)(
                    "/api" + path, data="{}", content_type="application/json"
                )
            assert response["Content-Type"].startswith("application/json"), (path, method)
            if method in documented:
                # A bare request to a documented operation: a list (200) or the body refused
                # as a 400 naming why; a 500 or a 404 fails here.
                status, code = DOCUMENTED_ANSWERS[path, method]
                assert response.status_code == status, (path, method, response.status_code)
                if code is not None:
                    assert response.json()["error"]["code"] == code, (path, method)
            else:
                assert response.status_code == 405, (path, method, response.status_code)
                assert response.json()["error"]["code"] == "method_not_allowed"


def test_nul_characters_get_a_clear_400_not_a_database_error(client_acme, catalog):
    response = client_acme.post(
        "/api/ledger",
        '{"item": "A\\u0000", "location": "X", "qty": "1", "kind": "receipt"}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_characters"
    assert client_acme.get("/api/balances", {"item": "a\x00"}).status_code == 400
