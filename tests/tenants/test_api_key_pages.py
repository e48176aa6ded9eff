"""The API keys page (owners and org admins of the organisation, platform admins): list, create
with the raw key shown once, revoke; nobody else may do any of it."""

from __future__ import annotations

import re

import pytest

from tenants.models import ApiKey
from tests.factories import make_user
from tests.page_helpers import assert_login_redirect, client_for, messages_of, table_body, text

pytestmark = pytest.mark.django_db


def listed_prefixes(response) -> list[str]:
    assert response.status_code == 200
    return re.findall(r'<tr data-prefix="([0-9a-f]+)">', table_body(text(response), "keys"))


def test_it_lists_the_organisations_keys(as_acme_owner, acme_key, globex_key):
    acme_prefix, globex_prefix = acme_key.split("_")[1], globex_key.split("_")[1]
    response = as_acme_owner.get("/orgs/acme/api-keys/")
    assert listed_prefixes(response) == [acme_prefix]
    html = text(response)
    assert f"ie_{acme_prefix}_…" in html and "acme tests" in html
    assert acme_key not in html  # never the secret
    assert globex_prefix not in html


def raw_key_in(response) -> str | None:
    match = re.search(r'<p class="secret" id="raw-key">([^<]+)</p>', text(response))
    return match[1] if match else None


def test_it_creates_a_key_and_shows_it_once(as_acme_owner, acme_owner, acme):
    response = as_acme_owner.post("/orgs/acme/api-keys/", {"label": "  warehouse scanner "})
    # Post/redirect/get: the POST answers with a redirect, never with the key itself.
    assert response.status_code == 302 and response["Location"] == "/orgs/acme/api-keys/"
    assert "ie_" not in text(response)
    key = ApiKey.objects.get(organization=acme)
    assert key.label == "warehouse scanner" and key.created_by == acme_owner

    shown = as_acme_owner.get("/orgs/acme/api-keys/")
    raw = raw_key_in(shown)
    assert raw.startswith(f"ie_{key.prefix}_") and len(raw) > len(f"ie_{key.prefix}_") + 20
    assert "warehouse scanner" in text(shown)
    assert "no-store" in shown["Cache-Control"]
    assert listed_prefixes(shown) == [key.prefix]

    later = as_acme_owner.get("/orgs/acme/api-keys/")
    assert raw not in text(later) and 'id="raw-key"' not in text(later)
    assert listed_prefixes(later) == [key.prefix]
    assert "no-store" not in later.get("Cache-Control", "")


def test_it_reloading_after_creating_a_key_creates_no_second_key(as_acme_owner, acme):
    response = as_acme_owner.post("/orgs/acme/api-keys/", {"label": "ci"}, follow=True)
    assert response.redirect_chain == [("/orgs/acme/api-keys/", 302)]
    assert raw_key_in(response) is not None
    # A reload repeats the last request, which is now the GET after the redirect.
    for _ in range(3):
        again = as_acme_owner.get("/orgs/acme/api-keys/")
        assert again.status_code == 200 and raw_key_in(again) is None
    assert ApiKey.objects.filter(organization=acme).count() == 1


def test_it_shows_a_new_key_only_on_its_own_organisations_page(acme, globex):
    from tenants.services import membership_grant

    user = make_user("owner-both", org=acme, role="owner")
    membership_grant(user=user, organization=globex, role="owner")
    owner = client_for(user)
    owner.post("/orgs/acme/api-keys/", {"label": "acme key"})
    assert raw_key_in(owner.get("/orgs/globex/api-keys/")) is None
    assert raw_key_in(owner.get("/orgs/acme/api-keys/")).startswith("ie_")


def test_it_drops_a_new_key_left_too_long_in_the_session(as_acme_owner, acme):
    from tenants import key_pages

    as_acme_owner.post("/orgs/acme/api-keys/", {"label": "stale"})
    session = as_acme_owner.session
    new = session[key_pages.NEW_KEY_SESSION]
    new["at"] -= key_pages.NEW_KEY_MAX_AGE_SECONDS + 1
    session[key_pages.NEW_KEY_SESSION] = new
    session.save()
    assert raw_key_in(as_acme_owner.get("/orgs/acme/api-keys/")) is None
    assert key_pages.NEW_KEY_SESSION not in as_acme_owner.session


def test_the_created_key_opens_the_api(as_acme_owner, acme):
    raw = raw_key_in(as_acme_owner.post("/orgs/acme/api-keys/", {"label": "ci"}, follow=True))
    api = client_for(None)
    assert api.get("/api/items", HTTP_X_API_KEY=raw).status_code == 200
    assert api.get("/api/items", HTTP_X_API_KEY=raw[:-1] + "x").status_code == 401


def test_it_refuses_an_empty_label(as_acme_owner, acme):
    response = as_acme_owner.post("/orgs/acme/api-keys/", {"label": "   "})
    assert response.status_code == 400
    html = text(response)
    assert 'id="key-error"' in html and "needs a label" in html
    assert 'aria-invalid="true"' in html and 'id="raw-key"' not in html
    assert ApiKey.objects.filter(organization=acme).count() == 0


def test_it_refuses_a_label_too_long(as_acme_owner, acme):
    response = as_acme_owner.post("/orgs/acme/api-keys/", {"label": "x" * 101})
    assert response.status_code == 400 and "longer than 100" in text(response)
    assert ApiKey.objects.count() == 0


def test_it_accepts_a_label_of_exactly_100_characters_and_emoji(as_acme_owner, acme):
    # The zero-width joiner inside the family emoji is a format character, not a control one.
    label = "👨\u200d👩\u200d👧 " + "x" * 94
    assert len(label) == 100
    response = as_acme_owner.post("/orgs/acme/api-keys/", {"label": label})
    assert response.status_code == 302
    assert list(ApiKey.objects.values_list("label", flat=True)) == [label]


def test_it_keeps_the_refused_label_in_the_field(as_acme_owner, acme):
    response = as_acme_owner.post("/orgs/acme/api-keys/", {"label": "dock\t<b>4</b>"})
    assert response.status_code == 400
    assert 'value="dock\t&lt;b&gt;4&lt;/b&gt;"' in text(response)
    assert ApiKey.objects.count() == 0


def revoke_url(key) -> str:
    return f"/orgs/acme/api-keys/{key.id}/revoke/"


def test_it_asks_before_revoking_a_key(as_acme_owner, acme_key):
    key = ApiKey.objects.get(prefix=acme_key.split("_")[1])
    listing = text(as_acme_owner.get("/orgs/acme/api-keys/"))
    assert f'<a class="button danger" href="{revoke_url(key)}"' in listing  # a link, not a POST
    response = as_acme_owner.get(revoke_url(key))
    assert response.status_code == 200
    html = text(response)
    assert 'id="confirm-revoke"' in html and f"ie_{key.prefix}_…" in html and "acme tests" in html
    assert f'action="{revoke_url(key)}"' in html and 'name="confirm" value="yes"' in html
    key.refresh_from_db()
    assert key.revoked_at is None


def test_it_revokes_a_key_once_confirmed(as_acme_owner, acme_key):
    key = ApiKey.objects.get(prefix=acme_key.split("_")[1])
    response = as_acme_owner.post(revoke_url(key), {"confirm": "yes"}, follow=True)
    assert response.redirect_chain == [("/orgs/acme/api-keys/", 302)]
    assert f"Key {key.prefix} (acme tests) revoked." in messages_of(response)
    key.refresh_from_db()
    assert key.revoked_at is not None
    body = table_body(text(response), "keys")
    assert "revoked" in body and f"/api-keys/{key.id}/revoke/" not in body
    # The revoked key no longer opens the API.
    assert client_for(None).get("/api/items", HTTP_X_API_KEY=acme_key).status_code == 401


@pytest.mark.parametrize("data", [{}, {"confirm": ""}, {"confirm": "no"}, {"confirm": "on"}])
def test_it_revokes_nothing_without_the_confirmation(data, as_acme_owner, acme_key):
    key = ApiKey.objects.get(prefix=acme_key.split("_")[1])
    response = as_acme_owner.post(revoke_url(key), data)
    assert response.status_code == 302 and response["Location"] == revoke_url(key)
    key.refresh_from_db()
    assert key.revoked_at is None
    assert client_for(None).get("/api/items", HTTP_X_API_KEY=acme_key).status_code == 200


def test_revoking_twice_keeps_the_first_time(as_acme_owner, acme_key):
    key = ApiKey.objects.get(prefix=acme_key.split("_")[1])
    as_acme_owner.post(revoke_url(key), {"confirm": "yes"})
    key.refresh_from_db()
    first = key.revoked_at
    assert first is not None
    assert as_acme_owner.post(revoke_url(key), {"confirm": "yes"}).status_code == 302
    key.refresh_from_db()
    assert key.revoked_at == first
    html = text(as_acme_owner.get(revoke_url(key)))
    assert "already revoked" in html and 'name="confirm"' not in html


def test_it_revokes_only_on_post(as_acme_owner, acme_key):
    key = ApiKey.objects.get(prefix=acme_key.split("_")[1])
    assert as_acme_owner.get(revoke_url(key), {"confirm": "yes"}).status_code == 200
    assert as_acme_owner.put(revoke_url(key)).status_code == 405
    key.refresh_from_db()
    assert key.revoked_at is None
    assert as_acme_owner.delete("/orgs/acme/api-keys/").status_code == 405


# --- outsiders -----------------------------------------------------------------------------------


def test_another_organisations_owner_cannot_list_create_or_revoke(as_globex_owner, acme, acme_key):
    key = ApiKey.objects.get(prefix=acme_key.split("_")[1])
    assert as_globex_owner.get("/orgs/acme/api-keys/").status_code == 404
    assert as_globex_owner.post("/orgs/acme/api-keys/", {"label": "sneaky"}).status_code == 404
    assert as_globex_owner.get(f"/orgs/acme/api-keys/{key.id}/revoke/").status_code == 404
    assert (
        as_globex_owner.post(f"/orgs/acme/api-keys/{key.id}/revoke/", {"confirm": "yes"})
    ).status_code == 404
    # Nor by naming the other organisation's key under their own organisation.
    assert (
        as_globex_owner.post(f"/orgs/globex/api-keys/{key.id}/revoke/", {"confirm": "yes"})
    ).status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None
    assert ApiKey.objects.filter(organization=acme).count() == 1


def test_support_staff_cannot_manage_keys(as_acme_support, acme_key):
    # A member in another role is told why (403), not "No such organisation".
    key = ApiKey.objects.get(prefix=acme_key.split("_")[1])
    response = as_acme_support.get("/orgs/acme/api-keys/")
    assert response.status_code == 403
    assert "Your role in Acme Corporation is support" in text(response)
    assert as_acme_support.post("/orgs/acme/api-keys/", {"label": "x"}).status_code == 403
    revoke = f"/orgs/acme/api-keys/{key.id}/revoke/"
    assert as_acme_support.post(revoke, {"confirm": "yes"}).status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None and ApiKey.objects.count() == 1


def test_anonymous_visitors_are_asked_to_log_in_for_keys(anon, acme_key):
    key = ApiKey.objects.get(prefix=acme_key.split("_")[1])
    assert_login_redirect(anon.get("/orgs/acme/api-keys/"), "/orgs/acme/api-keys/")
    response = anon.post("/orgs/acme/api-keys/", {"label": "x"})
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    response = anon.post(f"/orgs/acme/api-keys/{key.id}/revoke/", {"confirm": "yes"})
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    key.refresh_from_db()
    assert key.revoked_at is None and ApiKey.objects.count() == 1


def test_org_admins_and_platform_admins_manage_keys(acme, as_admin):
    org_admin = client_for(make_user("acme-admin", org=acme, role="admin"))
    assert org_admin.post("/orgs/acme/api-keys/", {"label": "by org admin"}).status_code == 302
    assert as_admin.post("/orgs/acme/api-keys/", {"label": "by platform"}).status_code == 302
    assert sorted(ApiKey.objects.values_list("label", flat=True)) == ["by org admin", "by platform"]


def test_unknown_organisation_is_404(as_admin):
    assert as_admin.get("/orgs/nope/api-keys/").status_code == 404
    assert as_admin.post("/orgs/nope/api-keys/1/revoke/", {"confirm": "yes"}).status_code == 404
    assert as_admin.get("/orgs/acme/api-keys/999999/revoke/").status_code == 404
