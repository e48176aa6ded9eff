"""What routing costs: exactly one query for a keyed request (no `SET search_path`, no
`UPDATE ... last_used_at` once the key was used in the last minute), measured on the middleware
alone with a view that reads the tenant's schema, so the count is absolute, not relative."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tenants.middleware import TenantRoutingMiddleware
from tenants.models import ApiKey
from tenants.services import api_key_issue

pytestmark = pytest.mark.django_db


def tenant_view(request):
    # One query on the tenant's own path: proves the routing query left the right search_path.
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        request.seen_schema = cursor.fetchone()[0]
    return HttpResponse()


def route(host="localhost", **headers):
    request = RequestFactory().get("/api/balances", HTTP_HOST=host, headers=headers)
    with CaptureQueriesContext(connection) as ctx:
        response = TenantRoutingMiddleware(tenant_view)(request)
    assert response.status_code == 200, response.content
    return request, [q["sql"] for q in ctx.captured_queries]


def assert_no_set_or_update(queries):
    assert not [q for q in queries if q.lstrip().upper().startswith(("SET ", "UPDATE"))], queries


def test_it_limits_search_path_calls(settings):
    assert settings.TENANT_LIMIT_SET_CALLS is True


@pytest.mark.parametrize(
    "host, extra",
    [("localhost", {}), ("acme.localhost", {}), ("localhost", {"X-Org-Id": "acme"})],
    ids=["key alone", "subdomain", "x-org-id"],
)
def test_it_routes_a_used_key_in_exactly_one_query(acme, acme_key, host, extra):
    route(host, **{"X-Api-Key": acme_key, **extra})  # first use records last_used_at
    request, queries = route(host, **{"X-Api-Key": acme_key, **extra})
    assert request.tenant.slug == "acme" and request.seen_schema == "acme"
    assert len(queries) == 2, queries  # the routing query, then the view's own
    assert_no_set_or_update(queries)
    assert "organization_api_keys" in queries[0] and "set_config" in queries[0]


def test_it_sets_the_search_path_of_each_tenant_in_turn(acme, acme_key, globex, globex_key):
    for key, slug in [(acme_key, "acme"), (globex_key, "globex"), (acme_key, "acme")] * 2:
        request, queries = route(**{"X-Api-Key": key})
        assert request.seen_schema == slug
    assert len(queries) == 2 and not [q for q in queries if q.upper().startswith("SET ")]


def test_it_writes_last_use_at_most_once_a_minute(acme):
    issued = api_key_issue(organization=acme, label="cost")
    _, first = route(**{"X-Api-Key": issued.raw_key})
    assert len(first) == 3 and first[1].startswith("UPDATE"), first  # never used: recorded
    for _ in range(3):
        _, queries = route(**{"X-Api-Key": issued.raw_key})
        assert len(queries) == 2, queries
    a_while_ago = timezone.now() - timedelta(seconds=61)
    ApiKey.objects.filter(pk=issued.api_key.pk).update(last_used_at=a_while_ago)
    _, stale = route(**{"X-Api-Key": issued.raw_key})
    assert len(stale) == 3 and stale[1].startswith("UPDATE"), stale
    issued.api_key.refresh_from_db()
    assert issued.api_key.last_used_at > a_while_ago
