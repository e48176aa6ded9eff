"""The pitfalls listed at the end of ARCHITECTURE.md that are not covered where they belong
(worker schema: tests/operations; caches: tests/test_settings; new organisation's trigger:
tests/inventory/test_trigger; public tenant and cookies: tests/tenants, tests/test_settings)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent


def test_raw_tenant_sql_names_no_schema():
    # Tenant SQL runs once per schema with search_path = <tenant>, public; a schema name in it
    # would point every tenant at one schema.
    qualified = re.compile(r"\b(public|acme|globex)\.", re.IGNORECASE)
    for path in (ROOT / "inventory" / "sql").glob("*.sql"):
        code = "\n".join(line.split("--")[0] for line in path.read_text().splitlines())
        assert not qualified.search(code), f"{path.name} names a schema"


@pytest.mark.django_db
def test_each_request_sets_its_own_search_path(acme, acme_key):
    """No request inherits the previous request's tenant: routing resets to public first (and
    django-tenants sets search_path on the connection before each query that needs it)."""
    from django.http import HttpResponse
    from django.test import RequestFactory

    from tenants.middleware import TenantRoutingMiddleware

    seen = []

    def view(request):
        with connection.cursor() as cursor:
            cursor.execute("SHOW search_path")
            seen.append(cursor.fetchone()[0])
        return HttpResponse()

    mw = TenantRoutingMiddleware(view)
    rf = RequestFactory()
    mw(rf.get("/", HTTP_HOST="acme.localhost"))
    mw(rf.get("/", HTTP_HOST="localhost"))
    assert seen[0].startswith("acme") and seen[1] == "public"


@pytest.mark.django_db
def test_the_test_tenants_are_made_once_per_session(acme, globex):
    # Created by the session fixture, not per test: their schemas predate this test's transaction.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname IN ('acme', 'globex') AND xmin::text::bigint <> "
            "(pg_current_xact_id()::text::bigint % 4294967296)"
        )
        assert cursor.fetchone()[0] == 2


def test_poolers_are_documented_as_session_mode():
    text = (ROOT / "README.md").read_text() + (ROOT / "docs" / "OPERATIONS.md").read_text()
    assert "transaction-mode pooler" in text and "session pooling" in text


@pytest.mark.django_db
def test_a_platform_login_is_not_sent_to_tenant_hosts(acme_owner):
    from tests.factories import PASSWORD

    platform = Client(HTTP_HOST="localhost")
    response = platform.post("/login/", {"username": "acme-owner", "password": PASSWORD})
    assert response.cookies["sessionid"]["domain"] == ""  # host-only cookie
    # The browser would not send it to acme.localhost; a request there without it is anonymous.
    tenant = Client(HTTP_HOST="acme.localhost")
    assert tenant.get("/api/balances").status_code == 401
