"""The API keys page on a 390 px phone in a real browser: create (shown once, a reload creates
nothing), revoke through the confirmation, and nothing scrolls sideways; the error pages too."""

from __future__ import annotations

import pytest

from tenants.models import ApiKey
from tests.e2e.conftest import shot

pytestmark = pytest.mark.e2e

PHONE = (390, 844)


def sideways(page) -> int:
    """How far the page scrolls sideways (0 when it fits the screen)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def test_it_the_key_page_fits_a_phone_and_a_reload_creates_no_second_key(e2e, login):
    page = login("owner", viewport=PHONE)
    keys = ApiKey.objects.filter(organization__slug="acme")
    before = keys.count()
    page.goto(f"{e2e['url']}/orgs/acme/api-keys/")
    assert sideways(page) == 0
    page.get_by_label("Label (who or what will use it)").fill("handheld scanner at dock 4 north")
    page.get_by_role("button", name="Create key").click()
    raw = page.locator("#raw-key").inner_text().strip()
    assert raw.startswith("ie_")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "api-keys-phone")
    assert keys.count() == before + 1

    page.reload()  # after post/redirect/get a reload is a GET
    page.wait_for_selector("#keys")
    assert page.locator("#raw-key").count() == 0 and raw not in page.content()
    assert keys.count() == before + 1
    assert (
        keys.filter(revoked_at__isnull=True, label="handheld scanner at dock 4 north").count() == 1
    )

    prefix = raw.split("_")[1]
    page.get_by_role("link", name=f"Revoke key {prefix}").click()
    page.wait_for_selector("#confirm-revoke")
    assert sideways(page) == 0
    shot(page, "api-key-revoke-phone")
    assert keys.get(prefix=prefix).revoked_at is None  # asking revokes nothing
    page.get_by_role("button", name="Yes, revoke this key").click()
    page.wait_for_selector(f"tr[data-prefix='{prefix}'] .badge.bad")
    assert keys.get(prefix=prefix).revoked_at is not None
    assert sideways(page) == 0


@pytest.mark.parametrize(
    "path, status", [("/no/such/page/", 404), ("/fleet/", 403), ("/orgs/acme/runbook/", 403)]
)
def test_it_the_error_pages_fit_a_phone(path, status, e2e, login):
    page = login("owner", viewport=PHONE)
    response = page.goto(f"{e2e['url']}{path}")
    assert response.status == status
    assert page.get_by_role("link", name="Back to your start page").is_visible()
    assert sideways(page) == 0
    shot(page, f"error-{status}-phone")
