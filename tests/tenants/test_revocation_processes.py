"""Revocation is immediate on every process, with the default configuration (no Redis: a
LocMemCache per process). Two real gunicorn processes are warmed with requests; the change is
made from a third process (this one, committed); the very next request to each is refused."""

from __future__ import annotations

import pytest

from tenants.models import ApiKey, Domain, Organization
from tenants.services import api_key_issue, api_key_revoke, organization_set_active
from tests.tenants.servers import Server

ITEMS = "/api/items-enterprise"


@pytest.fixture
def servers(committed, tmp_path):
    started = [Server(tmp_path), Server(tmp_path)]
    try:
        for server in started:
            server.wait_ready()
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def acme_committed(committed):
    acme = Organization.objects.get(slug="acme")
    issued = api_key_issue(organization=acme, label="h4 two processes")
    try:
        yield acme, issued
    finally:
        ApiKey.objects.filter(pk=issued.api_key.pk).delete()
        Domain.objects.filter(domain="stock.localhost").delete()
        organization_set_active(organization=acme, is_active=True)


def warm(servers, key: str, host: str = "localhost") -> None:
    for _ in range(3):
        for server in servers:
            status, body = server.get(ITEMS, host=host, **{"X-Api-Key": key})
            assert status == 200, (status, body, server.output())


def refused_everywhere(servers, key: str, status: int, code: str, host: str = "localhost"):
    for server in servers:
        got, body = server.get(ITEMS, host=host, **{"X-Api-Key": key})
        assert (got, body["error"]["code"]) == (status, code), (server.port, got, body)


def test_it_refuses_a_revoked_key_on_the_next_request_of_every_process(servers, acme_committed):
    _, issued = acme_committed
    warm(servers, issued.raw_key)
    api_key_revoke(api_key=issued.api_key)
    refused_everywhere(servers, issued.raw_key, 401, "api_key_revoked")


def test_it_refuses_a_deactivated_organisation_on_the_next_request_of_every_process(
    servers, acme_committed
):
    acme, issued = acme_committed
    warm(servers, issued.raw_key)
    warm(servers, issued.raw_key, host="acme.localhost")
    organization_set_active(organization=acme, is_active=False)
    refused_everywhere(servers, issued.raw_key, 403, "organization_inactive")
    refused_everywhere(servers, issued.raw_key, 403, "organization_inactive", "acme.localhost")
    organization_set_active(organization=acme, is_active=True)
    warm(servers, issued.raw_key)  # and back, as promptly


def test_it_refuses_a_removed_domain_on_the_next_request_of_every_process(servers, acme_committed):
    acme, issued = acme_committed
    Domain.objects.create(domain="stock.localhost", tenant=acme, is_primary=False)
    warm(servers, issued.raw_key, host="stock.localhost")
    Domain.objects.filter(domain="stock.localhost").delete()
    refused_everywhere(servers, issued.raw_key, 404, "unknown_organization", "stock.localhost")


def test_it_serves_each_key_its_own_schema_on_pooled_threads(committed, tmp_path):
    """Routing sets the search_path in its own query and django-tenants trusts it: under threads
    sharing a connection pool, every response still comes from the key's own schema."""
    from concurrent.futures import ThreadPoolExecutor

    from django_tenants.utils import schema_context

    from inventory.models import Item

    keys = {}
    for slug in ("acme", "globex"):
        with schema_context(slug):
            Item.objects.create(sku=f"H4-{slug.upper()}-ONLY", name=slug, unit="g")
        org = Organization.objects.get(slug=slug)
        keys[slug] = api_key_issue(organization=org, label="h4 threads")
    server = Server(tmp_path, threads=4)
    try:
        server.wait_ready()

        def client(n: int) -> list[str]:
            wrong = []
            for i in range(24):
                slug = ("acme", "globex")[(n + i) % 2]
                host = ("localhost", f"{slug}.localhost")[i % 3 == 0]
                status, body = server.get(
                    f"{ITEMS}?search=H4-", host=host, **{"X-Api-Key": keys[slug].raw_key}
                )
                skus = {row["sku"] for row in body["results"]} if status == 200 else status
                if skus != {f"H4-{slug.upper()}-ONLY"} or body["organization"] != slug:
                    wrong.append(f"{slug} via {host}: {skus} {body}")
            return wrong

        with ThreadPoolExecutor(8) as pool:
            wrong = [w for result in pool.map(client, range(8)) for w in result]
        assert wrong == [], wrong[:5]
    finally:
        server.stop()
        ApiKey.objects.filter(pk__in=[k.api_key.pk for k in keys.values()]).delete()
