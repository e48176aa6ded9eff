"""Tenant routing: find the organisation a request is for, switch the connection to its schema,
and refuse tenant data to anyone without a key of that organisation or a membership.

Resolution order, each step only when no earlier one found an organisation:
  1. X-Org-Id header (UUID or slug)   2. the host: `<slug>.<BASE_DOMAIN>`, or a Domain row
  3. API key (X-Api-Key / Authorization: Bearer)   4. settings.DEFAULT_ORG
A presented API key is always verified, and it must belong to the organisation found.

Routing costs one query (selectors.routing_rows): it reads the current state of key,
organisation and domain (no per-process cache, so revocation is immediate on every process) and
sets the tenant's search_path in the same round trip. Last use of a key is written at most once
a minute (only when the last_used_at that query read is older than that).

Hosts: lower-cased, the port and one trailing dot removed, a leading `www.` dropped. A host
under BASE_DOMAIN other than the platform host must name an organisation: `<slug>.<BASE_DOMAIN>`
(the slug decides, whatever the Domain rows say) or a Domain row; anything else under it,
a deeper `x.<slug>.<BASE_DOMAIN>` included, is 404. Other hosts (an IP, an unknown name) name
no organisation unless a Domain row says so, and routing falls through to the key.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import split_domain_port
from django.utils import timezone
from django_tenants.middleware.main import TenantMainMiddleware

from tenants import selectors
from tenants.models import Membership, Organization
from tenants.services import API_KEY_TOUCH_SECONDS, api_key_hash, api_key_touch, parse_api_key

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


def _org_ref(value: str, source: str) -> selectors.OrgRef:
    """Parse an X-Org-Id (or DEFAULT_ORG) value; 400 when it is neither a UUID nor a slug."""
    value = value.strip()
    try:
        return selectors.OrgRef(org_id=uuid.UUID(value))
    except ValueError:
        if not SLUG_RE.match(value.lower()):
            raise RoutingError(
                400,
                "malformed_org_id",
                f"{source} {value[:80]!r} is neither an organisation UUID nor a slug.",
            ) from None
        return selectors.OrgRef(slug=value.lower())


def _unknown(value: str, source: str) -> RoutingError:
    return RoutingError(404, "unknown_organization", f"No organisation {value!r} (from {source}).")


def request_host(request: HttpRequest) -> str:
    """The host as routing sees it: lower-case, no port, one trailing dot and a `www.` removed."""
    try:
        raw = request.get_host()
    except DisallowedHost:
        raise RoutingError(400, "disallowed_host", "The Host header is not allowed here.") from None
    host, _port = split_domain_port(raw)  # lower-cases and strips one trailing dot
    if not host or host.endswith(".") or ".." in host:
        raise RoutingError(400, "disallowed_host", "The Host header is not a valid host name.")
    return host[4:] if host.startswith("www.") else host


class HostLookup:
    """What a host asks of the routing query, and how to read the answer."""

    def __init__(self, host: str):
        self.host = host
        base = settings.BASE_DOMAIN
        self.is_platform = host == settings.PUBLIC_DOMAIN
        self.under_base = not self.is_platform and host.endswith("." + base)
        sub = host[: -len(base) - 1] if self.under_base else ""
        self.sub = sub
        # `<slug>.<BASE_DOMAIN>` routes by slug, so a BASE_DOMAIN change needs no new rows.
        self.slug = sub if sub and "." not in sub and SLUG_RE.match(sub) else None

    def resolve(self, rows: selectors.RoutingRows) -> Organization | None:
        if self.is_platform:
            return None
        if rows.host_slug is not None:
            return rows.host_slug
        domain_org = rows.host_domain
        if domain_org is not None:
            return None if domain_org.is_public else domain_org
        if self.under_base:
            if "." in self.sub:
                raise RoutingError(
                    404, "unknown_organization", f"No organisation for host '{self.host}'."
                )
            raise RoutingError(
                404, "unknown_organization", f"No organisation for subdomain '{self.sub}'."
            )
        return None  # an IP or a foreign name: no organisation, fall through to the key


class TenantRoutingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        connection.set_schema_to_public()
        request.tenant = None
        request.api_key = None
        request.org_resolved_by = None
        try:
            org, via, search_path_schema = self.resolve(request)
        except RoutingError as err:
            connection.set_schema_to_public()  # whatever the query set, the next cursor resets it
            return error_response(request, err.status, err.code, err.message)
        if org is not None:
            request.tenant = org
            request.org_resolved_by = via
            connection.set_tenant(org)
        _trust_search_path(search_path_schema, org)
        if request.api_key is not None:
            self._touch(request.api_key)
        TenantMainMiddleware.setup_url_routing(request, force_public=org is None)
        return self.get_response(request)

    def resolve(self, request: HttpRequest) -> tuple[Organization | None, str | None, str | None]:
        header = request.headers.get("X-Org-Id")
        header_ref = _org_ref(header, "X-Org-Id") if header is not None else None
        host = None if header_ref is not None else HostLookup(request_host(request))
        raw_key = presented_api_key(request)
        prefix = parse_api_key(raw_key) if raw_key is not None else None
        default_ref, default_error = None, None
        if header_ref is None and settings.DEFAULT_ORG:
            try:
                default_ref = _org_ref(settings.DEFAULT_ORG, "DEFAULT_ORG setting")
            except RoutingError as err:  # only an error if the default is needed
                default_error = err

        rows = selectors.routing_rows(
            header=header_ref,
            host_slug=host.slug if host and not host.is_platform else None,
            host=host.host if host and not host.is_platform else None,
            key_prefix=prefix,
            default=default_ref,
        )

        org, via = None, None
        if header_ref is not None:
            if rows.header is None:
                raise _unknown(header.strip(), "X-Org-Id")
            org, via = rows.header, "header"
        else:
            org = host.resolve(rows)
            via = "subdomain" if org else None
        if raw_key is not None:
            key = rows.key
            if key is None or not hmac.compare_digest(key.key_hash, api_key_hash(raw_key)):
                raise RoutingError(401, "invalid_api_key", "The API key is not valid.")
            if key.revoked:
                raise RoutingError(401, "api_key_revoked", "The API key has been revoked.")
            if rows.key_org.is_public:  # keys belong to organisations, never to the platform
                raise RoutingError(401, "invalid_api_key", "The API key is not valid.")
            request.api_key = key
            if org is None:
                org, via = rows.key_org, "api_key"
            elif org.id != key.organization_id:
                raise RoutingError(
                    403,
                    "key_wrong_organization",
                    f"This API key does not belong to organisation '{org.slug}'.",
                )
            # Key-authenticated API requests carry no cookies to forge: CSRF does not apply.
            # Session pages keep it whatever key header comes along.
            if request.path.startswith("/api/"):
                request._dont_enforce_csrf_checks = True
        if org is None and settings.DEFAULT_ORG:
            if default_error is not None:
                raise default_error
            if rows.default is None:
                raise _unknown(settings.DEFAULT_ORG, "DEFAULT_ORG setting")
            org, via = rows.default, "default"
        if org is not None and not org.is_active:
            raise RoutingError(
                403, "organization_inactive", f"Organisation '{org.slug}' is inactive."
            )
        return org, via, rows.search_path_schema

    @staticmethod
    def _touch(key: selectors.ApiKeyRecord) -> None:
        # The routing query read last_used_at: write only when it is a minute old or unset.
        cutoff = timezone.now() - timedelta(seconds=API_KEY_TOUCH_SECONDS)
        if key.last_used_at is None or key.last_used_at < cutoff:
            api_key_touch(api_key_id=key.id)


def _trust_search_path(search_path_schema: str | None, org: Organization | None) -> None:
    """Tell django-tenants the search_path the routing query already set, so that with
    TENANT_LIMIT_SET_CALLS it issues no `SET search_path` of its own. Only when the query's
    choice is exactly the routed schema; otherwise django-tenants sets it as usual."""
    if search_path_schema is None or not getattr(settings, "TENANT_LIMIT_SET_CALLS", False):
        return
    expected = org.schema_name if org is not None else ""
    public = settings.PUBLIC_SCHEMA_NAME
    paths = [expected, public] if expected else [public]
    if search_path_schema == expected and connection._get_cursor_search_paths() == paths:
        connection.search_path_set_schemas = paths


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
