"""Moments on the pages are shown in the user's time zone, told by the browser in a cookie."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils import timezone

from config.middleware import UserTimeZoneMiddleware
from inventory.templatetags.numbers import when


def _zone_seen(cookie: str | None) -> str:
    request = RequestFactory().get("/")
    if cookie is not None:
        request.COOKIES["tz"] = cookie
    response = UserTimeZoneMiddleware(
        lambda r: HttpResponse(timezone.get_current_timezone_name())
    )(request)
    return response.content.decode()


def test_it_activates_the_zone_the_browser_names_for_the_request_only():
    assert _zone_seen("Asia/Tokyo") == "Asia/Tokyo"
    assert timezone.get_current_timezone_name() == "UTC"  # deactivated after the request


@pytest.mark.parametrize("cookie", [None, "", "Mars/Olympus", "../../etc/passwd", "x" * 500, "UTC\x00"])
def test_it_ignores_a_cookie_that_names_no_zone(cookie):
    assert _zone_seen(cookie) == "UTC"


def test_a_moment_is_shown_in_the_active_zone():
    moment = datetime(2026, 12, 1, 20, 30, tzinfo=UTC)
    with timezone.override("Asia/Tokyo"):
        html = str(when(moment))
    assert ">2026-12-02 05:30" in html and 'datetime="2026-12-01T20:30:00+00:00"' in html


@pytest.mark.django_db
def test_the_queue_shows_found_times_in_the_cookies_zone(as_admin, acme):
    from tests.page_helpers import open_discrepancies

    found = open_discrepancies("acme", 1, prefix="Z")[0].created_at
    as_admin.cookies["tz"] = "Asia/Kolkata"
    html = as_admin.get("/reconciliation/").content.decode()
    local = timezone.localtime(found, timezone=zoneinfo.ZoneInfo("Asia/Kolkata"))
    assert f'title="{local:%Y-%m-%d %H:%M:%S} IST"' in html
