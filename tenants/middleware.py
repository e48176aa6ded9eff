"""Tenant routing: find the organisation a request is for, switch the connection to its schema,
and refuse tenant data to anyone without a key of that organisation or a membership.

Resolution order, each step only when no earlier one found an organisation:
  1. X-Org-Id header (UUID or slug)   2. subdomain of BASE_DOMAIN (or any tenant domain)
  3. API key (X-Api-Key / Authorization: Bearer)   4. settings.DEFAULT_ORG
A presented API key is always verified, and it must belong to the organisation found.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_tenants.middleware.main import TenantMainMiddleware

from tenants import selectors
from tenants.models import Membership, Organization
from tenants.services import api_key_hash, api_key_touch, parse_api_key

log = logging.getLogger(__name__)

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,40}[a-z0-9]$")
# Tenant paths that need no credentials (they hold no tenant data).
OPEN_API_PATHS = ("/api/openapi.json", "/api/docs")


class RoutingError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    """JSON for API clients (and curl); a short plain page for browsers."""
    accept = request.headers.get("Accept", "")
    if request.path.startswith("/api/") or "text/html" not in accept:
        return JsonResponse({"error": {"code": code, "message": message}}, status=status)
    return HttpResponse(
        f"<!doctype html><title>{status}</title><h1>{status}</h1><p>{message}</p>",
        status=status,
        content_type="text/html; charset=utf-8",
    )


def presented_api_key(request: HttpRequest) -> str | None:
    key = request.headers.get("X-Api-Key")
    if key:
        return key.strip()
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


def _lookup_org_reference(value: str, source: str) -> Organization:
    value = value.strip()
    try:
        org = selectors.organization_by_id(uuid.UUID(value))
    except ValueError:
        if not SLUG_RE.match(value.lower()):
            raise RoutingError(
                400,
                "malformed_org_id",
                f"{source} {value[:80]!r} is neither an organisation UUID nor a slug.",
            ) from None
        org = selectors.organization_by_slug(value.lower())
    if org is None:
        raise RoutingError(
            404, "unknown_organization", f"No organisation {value!r} (from {source})."
        )
    return org


class TenantRoutingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        connection.set_schema_to_public()
        request.tenant = None
        request.api_key = None
        request.org_resolved_by = None
        try:
            org, via = self.resolve(request)
        except RoutingError as err:
            return error_response(request, err.status, err.code, err.message)
        if org is not None:
            request.tenant = org
            request.org_resolved_by = via
            connection.set_tenant(org)
        TenantMainMiddleware.setup_url_routing(request, force_public=org is None)
        return self.get_response(request)

    def resolve(self, request: HttpRequest) -> tuple[Organization | None, str | None]:
        org, via = None, None
        header = request.headers.get("X-Org-Id")
        if header is not None:
            org, via = _lookup_org_reference(header, "X-Org-Id"), "header"
        if org is None:
            org = self._org_from_host(request)
            via = "subdomain" if org else None
        raw_key = presented_api_key(request)
        if raw_key is not None:
            key = self._verify_key(raw_key)
            request.api_key = key
            if org is None:
                org = selectors.organization_by_id(key.organization_id)
                via = "api_key"
                if org is None:  # the key's organisation was deleted
                    raise RoutingError(
                        401, "invalid_api_key", "The API key's organisation no longer exists."
                    )
            elif org.id != key.organization_id:
                raise RoutingError(
                    403,
                    "key_wrong_organization",
                    f"This API key does not belong to organisation '{org.slug}'.",
                )
            # Key-authenticated requests carry no cookies to forge: CSRF does not apply.
            request._dont_enforce_csrf_checks = True
        if org is None and settings.DEFAULT_ORG:
            org, via = _lookup_org_reference(settings.DEFAULT_ORG, "DEFAULT_ORG setting"), "default"
        if org is not None and not org.is_active:
            raise RoutingError(
                403, "organization_inactive", f"Organisation '{org.slug}' is inactive."
            )
        if request.api_key is not None:
            api_key_touch(api_key_id=request.api_key.id)
        return org, via

    @staticmethod
    def _org_from_host(request: HttpRequest) -> Organization | None:
        try:
            host = TenantMainMiddleware.hostname_from_request(request).lower()
        except DisallowedHost:
            raise RoutingError(
                400, "disallowed_host", "The Host header is not allowed here."
            ) from None
        org = selectors.organization_by_host(host)
        if org is not None:
            return org
        base = settings.BASE_DOMAIN
        if host.endswith("." + base) and host != settings.PUBLIC_DOMAIN:
            sub = host[: -len(base) - 1]
            if "." not in sub and sub != "www":
                raise RoutingError(
                    404, "unknown_organization", f"No organisation for subdomain '{sub}'."
                )
        # A bare host (the platform host, an IP) names no organisation: fall through.
        return None

    @staticmethod
    def _verify_key(raw_key: str) -> selectors.ApiKeyRecord:
        prefix = parse_api_key(raw_key)
        record = selectors.api_key_by_prefix(prefix) if prefix else None
        if record is None or not hmac.compare_digest(record.key_hash, api_key_hash(raw_key)):
            raise RoutingError(401, "invalid_api_key", "The API key is not valid.")
        if record.revoked:
            raise RoutingError(401, "api_key_revoked", "The API key has been revoked.")
        return record


def user_can_access(user, org: Organization) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return Membership.objects.filter(user=user, organization_id=org.id).exists()


class TenantAccessMiddleware:
    """Runs after authentication: tenant API paths need a key of the organisation or a member."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path.startswith("/api/") and path not in OPEN_API_PATHS:
            denial = self.check(request)
            if denial is not None:
                return denial
        return self.get_response(request)

    @staticmethod
    def check(request: HttpRequest) -> HttpResponse | None:
        org = request.tenant
        if org is None:
            return error_response(
                request,
                401,
                "no_credentials",
                "No organisation and no credentials: send an API key (X-Api-Key or "
                "Authorization: Bearer), or X-Org-Id with a signed-in session.",
            )
        if request.api_key is not None:
            return None
        if not request.user.is_authenticated:
            return error_response(
                request,
                401,
                "no_credentials",
                f"Organisation '{org.slug}' needs an API key of its own or a signed-in member.",
            )
        if not user_can_access(request.user, org):
            return error_response(
                request, 403, "not_a_member", f"You are not a member of organisation '{org.slug}'."
            )
        return None
