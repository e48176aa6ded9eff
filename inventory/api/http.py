"""The API's request side: a JSON body parser that turns every malformed body into a 400, and
the authentication schemes. Routing and access (a key of the organisation, or a signed-in member)
are settled by tenants.middleware before any view runs; the schemes here only document them in
OpenAPI and add the CSRF check that a cookie session needs (ninja views are CSRF-exempt)."""

from __future__ import annotations

import json
from decimal import Decimal

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from django.http.request import RawPostDataException
from ninja.parser import Parser
from ninja.security import APIKeyHeader, HttpBearer, SessionAuth

from inventory.api.errors import ApiError

MAX_BODY_BYTES = 2 * 1024 * 1024


def _bad_body(message: str) -> ApiError:
    return ApiError(400, "validation_failed", message, {"body": [message]})


class JsonParser(Parser):
    def parse_body(self, request: HttpRequest):
        content_type = request.content_type or ""
        if "json" not in content_type:
            # Before touching request.body: a multipart body has been read as a form already
            # (request.body would raise RawPostDataException).
            raise _bad_body("Send a JSON body with Content-Type: application/json.")
        try:
            body = request.body
        except RequestDataTooBig:
            raise ApiError(413, "body_too_large", "The body is too large.") from None
        except RawPostDataException:
            raise _bad_body("Send a JSON body with Content-Type: application/json.") from None
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, "body_too_large", f"The body is larger than {MAX_BODY_BYTES} bytes.")
        if b"\\u0000" in body.lower():  # any JSON media type, not only application/json
            raise ApiError(400, "invalid_characters", "NUL characters are not allowed.")
        try:
            # Decimals, never floats: quantities stay exact.
            return json.loads(body or b"null", parse_float=Decimal)
        except RecursionError:
            raise ApiError(400, "invalid_json", "The JSON body is nested too deeply.") from None
        except (ValueError, UnicodeDecodeError) as err:
            message = f"The body is not valid JSON: {str(err)[:200]}"
            raise ApiError(400, "invalid_json", message) from None

    def parse_querydict(self, data, list_fields, request):
        # An empty parameter (`?page=`) means its default, as it always has.
        result = {}
        for key in data:
            if key in list_fields:
                result[key] = [v.strip() for v in data.getlist(key) if v.strip()]
            elif data[key].strip():
                result[key] = data[key].strip()
        return result


class ApiKey(APIKeyHeader):
    """X-Api-Key, verified by the routing middleware (request.api_key)."""

    param_name = "X-Api-Key"

    def authenticate(self, request: HttpRequest, key):
        return request.api_key if key else None


class Bearer(HttpBearer):
    """Authorization: Bearer <API key>, verified by the routing middleware."""

    def authenticate(self, request: HttpRequest, token):
        return request.api_key if token else None


class MemberSession(SessionAuth):
    """A signed-in member (checked by TenantAccessMiddleware), with Django's CSRF check."""

    def authenticate(self, request: HttpRequest, key):
        return request.user if request.user.is_authenticated else None


AUTH = [ApiKey(), Bearer(), MemberSession()]


def recorded_by(request: HttpRequest) -> str:
    if getattr(request, "api_key", None) is not None:
        return f"key:{request.api_key.label}"
    return f"user:{request.user.get_username()}"
