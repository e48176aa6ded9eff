"""Error pages in the site's own look (base.html) with a way back, the reason shown where there is
one; signing out lands on our own page; the favicon is linked and served."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders

from tests.page_helpers import text

pytestmark = pytest.mark.django_db

OUR_LOOK = '<link rel="stylesheet" href="/static/css/app.css">'


def test_it_shows_a_styled_404_with_a_way_back(as_acme_owner):
    response = as_acme_owner.get("/no/such/page/")
    assert response.status_code == 404
    html = text(response)
    assert OUR_LOOK in html and 'class="topbar"' in html
    assert "Not found" in html and "There is no page at <code>/no/such/page/</code>" in html
    assert 'href="/"' in html and 'href="/orgs/"' in html
    assert "Resolver404" not in html


def test_the_404_gives_the_reason_when_there_is_one(as_admin):
    html = text(as_admin.get("/orgs/nope/balances/"))
    assert "No such organisation." in html and OUR_LOOK in html


def test_a_404_for_anonymous_visitors_is_styled_too(anon):
    response = anon.get("/nothing-here/")
    assert response.status_code == 404
    html = text(response)
    assert OUR_LOOK in html and 'href="/"' in html and 'href="/login/"' in html


def test_it_shows_a_styled_403_with_the_reason_and_a_way_back(as_acme_owner):
    response = as_acme_owner.get("/fleet/")
    assert response.status_code == 403
    html = text(response)
    assert OUR_LOOK in html and "Not allowed" in html
    assert '<p id="error-reason">Platform admins only.</p>' in html
    assert 'href="/"' in html and 'href="/orgs/"' in html


def test_a_support_member_gets_a_403_that_says_why(as_acme_support, acme):
    for path in ["/orgs/acme/balances/", "/orgs/acme/api-keys/"]:
        response = as_acme_support.get(path)
        assert response.status_code == 403, path
        assert (
            '<p id="error-reason">Your role in Acme Corporation is support; this page is for its '
            "owners and admins.</p>"
        ) in text(response)


def test_an_outsider_still_gets_a_404_for_another_organisation(as_globex_owner, acme):
    response = as_globex_owner.get("/orgs/acme/balances/")
    assert response.status_code == 404 and "Acme" not in text(response)


def test_signing_out_lands_on_our_own_page(as_acme_owner):
    response = as_acme_owner.post("/logout/")
    assert response.status_code == 200
    html = text(response)
    assert OUR_LOOK in html and "You are signed out" in html and 'href="/login/"' in html
    assert "Django administration" not in html and "Log in again" not in html
    assert as_acme_owner.get("/orgs/acme/balances/").status_code == 302  # really signed out


def test_signing_out_of_the_admin_lands_on_our_own_page_too(as_admin):
    response = as_admin.post("/admin/logout/")
    assert response.status_code == 200
    assert "You are signed out" in text(response) and OUR_LOOK in text(response)


@pytest.mark.parametrize("page", ["/login/", "/orgs/", "/orgs/acme/api-keys/", "/missing/"])
def test_every_page_links_the_favicon(page, as_acme_owner, anon):
    html = text((anon if page == "/login/" else as_acme_owner).get(page))
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in html
    assert '<link rel="icon" href="/static/img/favicon-32.png" type="image/png"' in html


def test_the_favicon_files_exist():
    svg = finders.find("favicon.svg")
    assert svg and open(svg).read().startswith("<svg ")
    for name in ["img/favicon-32.png", "img/apple-touch-icon.png"]:
        path = finders.find(name)
        assert path and open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
