"""Builders for the page tests of every app: a signed-in client, stock in a tenant, open
discrepancies, login redirects, query counts (their fixtures are in tests/conftest.py)."""

from __future__ import annotations

import re
from decimal import Decimal

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from tests.factories import PASSWORD, make_catalog, post_rows


def post(schema: str, entries: list[dict]):
    return post_rows(schema, entries)


def stock_keys(schema: str, count: int, *, prefix: str) -> list[dict]:
    """`count` distinct balance keys (item, location, no lot), one receipt of 5 each."""
    with schema_context(schema):
        items, locations, _ = make_catalog(items=count, locations=1, lots_per_item=0, prefix=prefix)
    entries = [
        {"item": i.sku, "location": locations[0].code, "qty": "5", "kind": "receipt"} for i in items
    ]
    post(schema, entries)
    return entries


def skew_and_reconcile(schema: str, by: str = "5", skus: list[str] | None = None):
    """Move balances away from their ledger sums by `by` (all keys, or those of `skus`), then run a
    full reconciliation there; a difference >= the tolerance opens a discrepancy."""
    from reconciliation.services import reconciliation_run

    with schema_context(schema):
        with connection.cursor() as cur:
            if skus is None:
                cur.execute(
                    "UPDATE inventory_balances SET qty_canonical = qty_canonical + %s",
                    [Decimal(by)],
                )
            else:
                cur.execute(
                    "UPDATE inventory_balances b SET qty_canonical = qty_canonical + %s "
                    "FROM inventory_items i WHERE i.id = b.item_id AND i.sku = ANY(%s)",
                    [Decimal(by), skus],
                )
        return reconciliation_run(mode="full")


def open_discrepancies(schema: str, count: int, *, prefix: str, by: str = "5"):
    """`count` new open discrepancies in `schema`, each of size |by|."""
    from reconciliation.models import Discrepancy

    entries = stock_keys(schema, count, prefix=prefix)
    skus = [e["item"] for e in entries]
    run = skew_and_reconcile(schema, by=by, skus=skus)
    return list(Discrepancy.objects.filter(run=run, sku__in=skus, status="open").order_by("sku"))


def balance_of(schema: str, sku: str, location: str) -> Decimal | None:
    with connection.cursor() as cur:
        cur.execute(
            f'SELECT b.qty_canonical FROM "{schema}".inventory_balances b '
            f'JOIN "{schema}".inventory_items i ON i.id = b.item_id '
            f'JOIN "{schema}".inventory_locations l ON l.id = b.location_id '
            "WHERE i.sku = %s AND l.code = %s AND b.lot_id IS NULL",
            [sku, location],
        )
        row = cur.fetchone()
    return row[0] if row else None


def assert_login_redirect(response, path: str) -> None:
    assert response.status_code == 302, response.status_code
    assert response["Location"].startswith("/login/?next=")
    from urllib.parse import unquote

    assert unquote(response["Location"].split("next=", 1)[1]) == path


def text(response) -> str:
    return response.content.decode()


def table_body(html: str, table_id: str) -> str:
    match = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert match, f"no table {table_id}"
    return match.group(1)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def client_for(user=None) -> Client:
    """A client on the platform host, logged in as `user` (anonymous when None)."""
    client = Client(HTTP_HOST="localhost")
    if user is not None:
        assert client.login(username=user.username, password=PASSWORD)
    return client


def queries_for(client, path: str) -> tuple[int, list[str]]:
    client.get(path)  # warm the session, routing and content-type caches
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path)
    assert response.status_code == 200, response.status_code
    return len(ctx.captured_queries), [q["sql"] for q in ctx.captured_queries]


def assert_same(small: tuple[int, list[str]], large: tuple[int, list[str]], budget: int) -> None:
    """The same count at both sizes, and no more than the page's budget (the count measured when
    the budget was set: a query added to every request fails here too)."""
    assert small[0] == large[0], "\n".join(
        ["queries grew with the rows:", *large[1][len(small[1]) - 3 :]]
    )
    assert large[0] <= budget, "\n".join([f"{large[0]} queries, budget {budget}:", *large[1]])
