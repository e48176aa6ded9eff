"""Input hygiene common to every page and endpoint."""

from __future__ import annotations

import functools
import re
import zoneinfo
from itertools import accumulate

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from inventory.api.errors import body_too_large

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Our deepest document is a batch: {"entries": [{...}]}, depth 3. Python's json module recurses
# once per level and raises RecursionError (a 500) near 1,000; 100,000 "[" did exactly that.
MAX_JSON_DEPTH = 64
# A string, or an unterminated one up to the end: always matching (possessively) keeps the scan
# linear, where a pattern that can fail would rescan from every quote.
JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
NOT_A_BRACKET = re.compile(rb"[^\[\]{}]")
DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a JSON text nests deeper than `limit`, without parsing it. Cheap: a body with at
    most `limit` opening brackets cannot, and otherwise two C-speed regex passes leave only the
    brackets outside strings."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = NOT_A_BRACKET.sub(b"", JSON_STRING.sub(b"", body))
    return max(accumulate(DEPTH_STEP[b] for b in brackets), default=0) > limit


def is_json_like(content_type: str) -> bool:
    """application/json, text/json, application/vnd.api+json, text/plain, …: bodies a JSON
    parser may be handed (clients label JSON in many ways)."""
    content_type = (content_type or "").lower()
    return (
        content_type.endswith("/json")
        or content_type.endswith("+json")
        or content_type.startswith("text/")
    )


class RejectNulCharactersMiddleware:
    """PostgreSQL text cannot hold NUL characters; a query string, form value or JSON body with
    one would end as a database error (a 500). Refuse it up front with a 400 that says why."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            refusal = self._refusal(request)
        except RequestDataTooBig:
            # Reading the body here is the first to find it too large: the API's 413 (with
            # DEBUG off Django's handler400 would give it too; with DEBUG on, a debug page).
            if request.path.startswith("/api/"):
                return body_too_large(request)
            raise
        return refusal or self.get_response(request)

    def _refusal(self, request: HttpRequest) -> HttpResponse | None:
        if request.path.startswith("/api/") and request.content_type == "multipart/form-data":
            # Read the body before the form parser does: afterwards request.body raises
            # RawPostDataException (a 500) in any view that looks at it. Django then parses
            # the form from the buffered body.
            request.body  # noqa: B018
        if (
            request.path.startswith("/api/")
            and is_json_like(request.content_type)
            and json_depth_exceeds(request.body)
        ):
            message = f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels."
            return JsonResponse({"error": {"code": "invalid_json", "message": message}}, status=400)
        if self._has_nul(request):
            message = "NUL characters are not allowed in parameters, form fields or bodies."
            if request.path.startswith("/api/"):
                return JsonResponse(
                    {"error": {"code": "invalid_characters", "message": message}}, status=400
                )
            return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")
        return None

    @staticmethod
    def _has_nul(request: HttpRequest) -> bool:
        if "\x00" in request.path:
            return True
        for key, values in request.GET.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                return True
        if request.method == "POST" and request.content_type in FORM_TYPES:
            for key, values in request.POST.lists():
                if "\x00" in key or any("\x00" in v for v in values):
                    return True
        elif is_json_like(request.content_type):
            body = request.body
            # A raw NUL byte, or JSON's escape for it (\u0000, any case).
            if b"\x00" in body or b"\\u0000" in body.lower():
                return True
        return False


# The browser tells its time zone in this cookie (static/js/app.js); pages show moments in it.
TIME_ZONE_COOKIE = "tz"


class UserTimeZoneMiddleware:
    """Activate the user's time zone for the request, from the cookie the page's script sets from
    the browser (Intl). A name that is no IANA zone is ignored: the default (settings.TIME_ZONE)
    applies, never an error."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = _zone(request.COOKIES.get(TIME_ZONE_COOKIE, ""))
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


def _zone(name: str):
    if not name or len(name) > 64 or name not in _zone_names():
        return None
    return zoneinfo.ZoneInfo(name)


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())
