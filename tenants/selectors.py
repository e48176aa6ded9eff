"""Cached reads used on every request: organisations by id, slug or host, and API keys by prefix.

The routing cache is global (not per schema) and versioned: any change to an organisation,
domain or key bumps the version (see signals.py), so the next lookup misses and reads the
database. A shared cache (REDIS_URL) carries the bump to every web process.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches

from tenants.models import ApiKey, Domain, Organization

_VERSION_KEY = "routing-version"
_MISSING = "__missing__"


def _cache():
    return caches["routing"]


def routing_cache_version() -> int:
    version = _cache().get(_VERSION_KEY)
    if version is None:
        _cache().add(_VERSION_KEY, 1, timeout=None)
        version = _cache().get(_VERSION_KEY) or 1
    return version


def routing_cache_invalidate() -> None:
    try:
        _cache().incr(_VERSION_KEY)
    except ValueError:
        _cache().set(_VERSION_KEY, 2, timeout=None)


def _cached(key: str, load):
    version = routing_cache_version()
    full_key = f"{key}:v{version}"
    value = _cache().get(full_key)
    if value is None:
        value = load()
        _cache().set(full_key, _MISSING if value is None else value, settings.ROUTING_CACHE_SECONDS)
        return value
    return None if value == _MISSING else value


def _tenants():
    return Organization.objects.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME)


def organization_by_id(org_id: uuid.UUID) -> Organization | None:
    return _cached(f"org:id:{org_id}", lambda: _tenants().filter(pk=org_id).first())


def organization_by_slug(slug: str) -> Organization | None:
    return _cached(f"org:slug:{slug}", lambda: _tenants().filter(slug=slug).first())


def organization_by_host(host: str) -> Organization | None:
    """The organisation a host name belongs to (tenant domains only, never the platform host)."""

    def load():
        domain = (
            Domain.objects.select_related("tenant")
            .exclude(tenant__schema_name=settings.PUBLIC_SCHEMA_NAME)
            .filter(domain=host)
            .first()
        )
        return domain.tenant if domain else None

    return _cached(f"org:host:{host}", load)


@dataclass(frozen=True)
class ApiKeyRecord:
    id: int
    organization_id: uuid.UUID
    key_hash: str
    revoked: bool
    label: str


def api_key_by_prefix(prefix: str) -> ApiKeyRecord | None:
    def load():
        key = ApiKey.objects.filter(prefix=prefix).first()
        if key is None:
            return None
        return ApiKeyRecord(
            id=key.id,
            organization_id=key.organization_id,
            key_hash=key.key_hash,
            revoked=key.revoked_at is not None,
            label=key.label,
        )

    return _cached(f"key:{prefix}", load)
