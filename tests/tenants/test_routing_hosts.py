"""Hosts: normalised before routing (case, port, one trailing dot, `www.`), a deeper subdomain
refused, and `<slug>.<BASE_DOMAIN>` derived from the slug so a BASE_DOMAIN change keeps every
organisation reachable, while custom Domain rows keep working."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from tenants.models import Domain
from tests.tenants.test_routing import ITEMS, assert_error

pytestmark = pytest.mark.django_db


def get(host, key):
    return Client(HTTP_HOST=host).get(ITEMS, headers={"X-Api-Key": key})


@pytest.mark.parametrize(
    "host",
    ["globex.localhost.", "GLOBEX.localhost", "globex.localhost.:8000", "www.globex.localhost"],
)
def test_it_routes_a_normalised_host_to_its_organisation(host, acme_key, globex_key):
    assert_error(get(host, acme_key), 403, "key_wrong_organization")
    response = get(host, globex_key)
    assert response.status_code == 200 and response.json()["organization"] == "globex"


@pytest.mark.parametrize(
    "host", ["x.globex.localhost", "a.b.globex.localhost.", "x.acme.localhost"]
)
def test_it_refuses_a_deeper_subdomain_with_404(host, acme_key):
    message = assert_error(get(host, acme_key), 404, "unknown_organization")
    assert host.rstrip(".") in message


def test_it_refuses_a_host_with_an_empty_label(acme_key):
    assert_error(get("globex.localhost..", acme_key), 400, "disallowed_host")


def test_it_routes_a_registered_deeper_domain(acme, acme_key):
    Domain.objects.create(domain="eu.stock.localhost", tenant=acme, is_primary=False)
    assert get("eu.stock.localhost", acme_key).json()["organization"] == "acme"


def test_it_routes_the_slug_subdomain_whatever_the_domain_rows_say(acme, acme_key):
    Domain.objects.filter(tenant=acme).delete()
    assert get("acme.localhost", acme_key).json()["organization"] == "acme"


@override_settings(
    BASE_DOMAIN="inventory.example.com",
    PUBLIC_DOMAIN="inventory.example.com",
    ALLOWED_HOSTS=[".inventory.example.com", ".localhost", "custom.example.org"],
)
def test_it_keeps_routing_every_organisation_after_a_base_domain_change(acme, acme_key, globex_key):
    # The Domain rows still say acme.localhost; the new base needs no migration of them.
    response = get("acme.inventory.example.com", acme_key)
    assert response.status_code == 200 and response.json()["organization"] == "acme"
    assert get("globex.inventory.example.com", globex_key).json()["organization"] == "globex"
    assert_error(get("globex.inventory.example.com", acme_key), 403, "key_wrong_organization")
    assert_error(get("nosuch.inventory.example.com", acme_key), 404, "unknown_organization")
    # The platform host names no organisation: the key decides.
    assert get("inventory.example.com", acme_key).json()["organization"] == "acme"
    # Custom domains (and the old subdomains, now custom) keep working.
    Domain.objects.create(domain="custom.example.org", tenant=acme, is_primary=False)
    assert get("custom.example.org", acme_key).json()["organization"] == "acme"
    assert_error(get("globex.localhost", acme_key), 403, "key_wrong_organization")
