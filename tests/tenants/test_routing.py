"""Tenant routing: each step alone, the order between them, and every error with its JSON body."""

from __future__ import annotations

import pytest
from django.test import Client

from tenants.services import api_key_issue, api_key_revoke, organization_set_active
from tests.factories import PASSWORD, make_user

ITEMS = "/api/items-enterprise"
LEDGER = "/api/ledger"
pytestmark = pytest.mark.django_db


def get(client, path=ITEMS, **headers):
    return client.get(path, headers=headers)


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]["message"]


# --- each step on its own ----------------------------------------------------------------------


def test_it_routes_by_x_org_id_uuid_with_a_key(api, acme, acme_key):
    response = get(api, **{"X-Org-Id": str(acme.id), "X-Api-Key": acme_key})
    assert response.status_code == 200
    assert response.json()["organization"] == "acme"


def test_it_routes_by_x_org_id_slug_for_a_signed_in_member(api, acme, acme_owner):
    api.login(username="acme-owner", password=PASSWORD)
    response = get(api, **{"X-Org-Id": "acme"})
    assert response.status_code == 200
    assert response.json()["organization"] == "acme"


def test_it_routes_by_subdomain(acme, acme_key):
    client = Client(HTTP_HOST="acme.localhost:8000")
    response = get(client, **{"X-Api-Key": acme_key})
    assert response.json()["organization"] == "acme"


def test_it_falls_through_from_a_bare_host_to_the_api_key(api, globex, globex_key):
    # The Node version stopped at a host without subdomain; here the key still decides.
    response = get(api, Authorization=f"Bearer {globex_key}")
    assert response.status_code == 200
    assert response.json()["organization"] == "globex"


def test_it_falls_through_from_an_ip_host_to_the_api_key(globex, globex_key):
    response = get(Client(HTTP_HOST="127.0.0.1:8000"), **{"X-Api-Key": globex_key})
    assert response.json()["organization"] == "globex"


def test_it_uses_the_default_organisation_last(api, settings, acme, acme_owner):
    settings.DEFAULT_ORG = "acme"
    api.login(username="acme-owner", password=PASSWORD)
    assert get(api).json()["organization"] == "acme"


# --- priority ----------------------------------------------------------------------------------


def test_it_prefers_the_header_over_the_subdomain(acme, globex, db):
    make_user("root", superuser=True)
    client = Client(HTTP_HOST="globex.localhost")
    client.login(username="root", password=PASSWORD)
    assert get(client, **{"X-Org-Id": "acme"}).json()["organization"] == "acme"
    assert get(client).json()["organization"] == "globex"


def test_it_prefers_the_api_key_over_the_default_organisation(
    api, settings, acme, acme_key, globex
):
    settings.DEFAULT_ORG = "globex"
    assert get(api, **{"X-Api-Key": acme_key}).json()["organization"] == "acme"


def test_it_reports_how_the_organisation_was_found(api, acme, acme_key, settings):
    from django.test import RequestFactory

    from tenants.middleware import TenantRoutingMiddleware

    seen = {}

    def view(request):
        seen["via"] = request.org_resolved_by
        from django.http import HttpResponse

        return HttpResponse()

    mw = TenantRoutingMiddleware(view)
    rf = RequestFactory()
    mw(rf.get("/", HTTP_HOST="localhost", HTTP_X_ORG_ID="acme"))
    assert seen["via"] == "header"
    mw(rf.get("/", HTTP_HOST="acme.localhost"))
    assert seen["via"] == "subdomain"
    mw(rf.get("/", HTTP_HOST="localhost", HTTP_X_API_KEY=acme_key))
    assert seen["via"] == "api_key"
    settings.DEFAULT_ORG = str(acme.id)
    mw(rf.get("/", HTTP_HOST="localhost"))
    assert seen["via"] == "default"


# --- errors ------------------------------------------------------------------------------------


def test_it_rejects_a_malformed_x_org_id_with_400(api, acme_key):
    message = assert_error(
        get(api, **{"X-Org-Id": "Not A Slug!", "X-Api-Key": acme_key}), 400, "malformed_org_id"
    )
    assert "Not A Slug!" in message


def test_it_answers_401_without_credentials(api, acme):
    assert_error(get(api), 401, "no_credentials")
    assert_error(get(api, **{"X-Org-Id": "acme"}), 401, "no_credentials")
    assert_error(get(Client(HTTP_HOST="acme.localhost")), 401, "no_credentials")


def test_it_answers_401_for_a_bad_key(api, acme, acme_key):
    assert_error(get(api, **{"X-Api-Key": "nonsense"}), 401, "invalid_api_key")
    tampered = acme_key[:-4] + ("AAAA" if not acme_key.endswith("AAAA") else "BBBB")
    assert_error(get(api, **{"X-Api-Key": tampered}), 401, "invalid_api_key")


def test_it_answers_401_for_a_revoked_key(api, acme):
    issued = api_key_issue(organization=acme, label="old")
    api_key_revoke(api_key=issued.api_key)
    assert_error(get(api, **{"X-Api-Key": issued.raw_key}), 401, "api_key_revoked")


def test_it_answers_403_for_an_inactive_organisation(api, acme, acme_key):
    organization_set_active(organization=acme, is_active=False)
    message = assert_error(get(api, **{"X-Api-Key": acme_key}), 403, "organization_inactive")
    assert "acme" in message
    assert_error(
        get(api, **{"X-Org-Id": "acme", "X-Api-Key": acme_key}), 403, "organization_inactive"
    )


def test_it_refuses_an_acme_key_reading_globex_by_header(api, acme_key, globex):
    assert_error(
        get(api, **{"X-Org-Id": "globex", "X-Api-Key": acme_key}), 403, "key_wrong_organization"
    )
    assert_error(
        get(api, **{"X-Org-Id": str(globex.id), "X-Api-Key": acme_key}),
        403,
        "key_wrong_organization",
    )


def test_it_refuses_an_acme_key_reading_globex_by_subdomain(acme_key, globex):
    client = Client(HTTP_HOST="globex.localhost")
    assert_error(get(client, **{"X-Api-Key": acme_key}), 403, "key_wrong_organization")


def test_it_refuses_a_signed_in_non_member_with_403(api, acme, globex_owner):
    api.login(username="globex-owner", password=PASSWORD)
    assert_error(get(api, **{"X-Org-Id": "acme"}), 403, "not_a_member")
    assert_error(get(Client(HTTP_HOST="acme.localhost")), 401, "no_credentials")


def test_it_answers_404_for_an_unknown_organisation(api, acme_key):
    assert_error(
        get(api, **{"X-Org-Id": "nosuchorg", "X-Api-Key": acme_key}), 404, "unknown_organization"
    )
    assert_error(
        get(api, **{"X-Org-Id": "00000000-0000-0000-0000-000000000000"}),
        404,
        "unknown_organization",
    )
    assert_error(get(Client(HTTP_HOST="nosuchorg.localhost")), 404, "unknown_organization")


def test_it_does_not_route_to_the_public_schema_by_name(api):
    assert_error(get(api, **{"X-Org-Id": "public"}), 404, "unknown_organization")


# --- cache -------------------------------------------------------------------------------------


def test_it_sees_a_revoked_key_at_once_despite_the_cache(api, acme):
    issued = api_key_issue(organization=acme, label="cached")
    assert get(api, **{"X-Api-Key": issued.raw_key}).status_code == 200
    assert get(api, **{"X-Api-Key": issued.raw_key}).status_code == 200  # served from the cache
    api_key_revoke(api_key=issued.api_key)
    assert_error(get(api, **{"X-Api-Key": issued.raw_key}), 401, "api_key_revoked")


def test_it_sees_a_deactivated_organisation_at_once(api, acme, acme_key):
    assert get(api, **{"X-Api-Key": acme_key}).status_code == 200
    organization_set_active(organization=acme, is_active=False)
    assert_error(get(api, **{"X-Api-Key": acme_key}), 403, "organization_inactive")


def test_it_sees_a_new_domain_at_once(acme, acme_key):
    from tenants.models import Domain

    client = Client(HTTP_HOST="stock.localhost")
    assert_error(get(client, **{"X-Api-Key": acme_key}), 404, "unknown_organization")  # now cached
    Domain.objects.create(domain="stock.localhost", tenant=acme, is_primary=False)
    assert get(client, **{"X-Api-Key": acme_key}).json()["organization"] == "acme"


def test_it_records_when_a_key_was_last_used(api, acme):
    issued = api_key_issue(organization=acme, label="usage")
    assert issued.api_key.last_used_at is None
    get(api, **{"X-Api-Key": issued.raw_key})
    issued.api_key.refresh_from_db()
    assert issued.api_key.last_used_at is not None


def test_it_allows_api_key_posts_without_csrf_but_not_session_posts(acme, acme_key, acme_owner):
    # A POST the API serves (items-enterprise is read-only): the CSRF check, not the method, decides.
    body, content_type = '{"entries": []}', "application/json"
    client = Client(HTTP_HOST="acme.localhost", enforce_csrf_checks=True)
    client.login(username="acme-owner", password=PASSWORD)
    response = client.post(LEDGER, body, content_type=content_type)
    assert response.status_code == 403, response.content  # session without a CSRF token
    keyed = Client(HTTP_HOST="acme.localhost", enforce_csrf_checks=True)
    response = keyed.post(LEDGER, body, content_type=content_type, headers={"X-Api-Key": acme_key})
    assert response.status_code == 400, response.content  # past CSRF: the empty batch is refused
