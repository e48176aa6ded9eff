"""Writes on organisations, memberships and API keys. Each is safe to call twice."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from tenants.clone import schema_clone, template_current, template_refresh
from tenants.models import (
    RESERVED_SCHEMAS,
    RESERVED_SLUGS,
    ApiKey,
    Domain,
    Membership,
    Organization,
    slug_validator,
)

API_KEY_PREFIX_BYTES = 6  # 12 hex characters: readable, and unique enough to index
API_KEY_SECRET_BYTES = 32
# Last use of a key is written at most this often (not on every request).
API_KEY_TOUCH_SECONDS = 60


def organization_domain_for(slug: str) -> str:
    return f"{slug}.{settings.BASE_DOMAIN}"


def public_tenant_ensure() -> Organization:
    """The row django-tenants needs for the public schema, with the platform host as its domain."""
    org, _ = Organization.objects.get_or_create(
        schema_name=settings.PUBLIC_SCHEMA_NAME,
        defaults={"slug": "public", "name": "Platform"},
    )
    Domain.objects.get_or_create(
        domain=settings.PUBLIC_DOMAIN, defaults={"tenant": org, "is_primary": True}
    )
    return org


def organization_schema_name(slug: str) -> str:
    return slug.replace("-", "_")


def _schema_exists(schema_name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", [schema_name])
        return cursor.fetchone() is not None


def _check_schema_name_free(schema_name: str) -> None:
    """PostgreSQL's own schemas (pg_*, information_schema), public, and any schema already in the
    catalog (another tool's, or one left behind) can never become an organisation's: migrating
    "into" them would find tables missing or clash with the system's."""
    if schema_name.startswith("pg_") or schema_name in RESERVED_SCHEMAS:
        raise ValidationError(
            f"Schema '{schema_name}' is reserved by PostgreSQL; choose another slug."
        )
    if _schema_exists(schema_name):
        raise ValidationError(
            f"A schema '{schema_name}' already exists in the database; choose another slug."
        )


def organization_slug_check(slug: str) -> None:
    """Refuse a slug a new organisation cannot have (form, reserved word, or its schema)."""
    slug_validator(slug)
    if slug in RESERVED_SLUGS:
        raise ValidationError(f"'{slug}' is reserved; choose another slug.")
    _check_schema_name_free(organization_schema_name(slug))


def organization_create(
    *, slug: str, name: str, is_active: bool = True, clone: bool = True
) -> tuple[Organization, bool]:
    """Create an organisation with its schema and `<slug>.<BASE_DOMAIN>`.

    The schema is a copy of the migrated template (tenants/clone.py) when the template records
    exactly the code's migrations, else every tenant migration is run (also when clone=False).
    Called outside a transaction, a missing or stale template is rebuilt first (committed).
    The row, the schema, its tables and the domain are created in one transaction: a failure
    anywhere leaves nothing behind. Idempotent: for an existing slug nothing is changed except
    that a missing domain or schema is completed. Returns (organisation, created).
    """
    slug = (slug or "").strip().lower()
    slug_validator(slug)
    if slug in RESERVED_SLUGS:
        raise ValidationError(f"'{slug}' is reserved; choose another slug.")
    if not name or not name.strip():
        raise ValidationError("An organisation needs a name.")
    schema_name = organization_schema_name(slug)
    if (
        clone
        and not connection.in_atomic_block
        and not Organization.objects.filter(slug=slug).exists()
        and template_current() is None
    ):
        template_refresh()

    with transaction.atomic():
        org = Organization.objects.filter(slug=slug).first()
        created = org is None
        if created:
            organization_slug_check(slug)
            org = Organization(
                slug=slug, name=name.strip(), schema_name=schema_name, is_active=is_active
            )
            # Without a copy, saving runs CREATE SCHEMA and every tenant migration
            # (auto_create_schema), here inside our transaction (PostgreSQL DDL is transactional).
            if clone and schema_clone(schema_name):
                org.auto_create_schema = False
            try:
                org.save(verbosity=0)
            finally:
                connection.set_schema_to_public()
        else:
            org.create_schema(check_if_exists=True, verbosity=0)
        Domain.objects.get_or_create(
            domain=organization_domain_for(slug), defaults={"tenant": org, "is_primary": True}
        )
    return org, created


def organization_set_active(*, organization: Organization, is_active: bool) -> Organization:
    organization.is_active = is_active
    organization.save(update_fields=["is_active"])
    return organization


def membership_grant(*, user, organization: Organization, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise ValidationError(
            f"Unknown role {role!r}; use one of {', '.join(Membership.Role.values)}."
        )
    membership, _ = Membership.objects.update_or_create(
        user=user, organization=organization, defaults={"role": role}
    )
    return membership


def user_ensure(*, username: str, password: str, email: str = "", is_superuser: bool = False):
    """Create a user if missing. An existing user's password is left as it is."""
    User = get_user_model()
    user, created = User.objects.get_or_create(
        username=username,
        defaults={"email": email, "is_staff": is_superuser, "is_superuser": is_superuser},
    )
    if created:
        user.set_password(password)
        user.save(update_fields=["password"])
    return user


# --- API keys ---------------------------------------------------------------------------------


def api_key_hash(raw_key: str) -> str:
    return hmac.new(
        settings.API_KEY_HMAC_SECRET.encode(), raw_key.encode(), hashlib.sha256
    ).hexdigest()


def parse_api_key(raw_key: str) -> str | None:
    """Return the lookup prefix of a well-formed key, or None."""
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != "ie" or len(parts[1]) != API_KEY_PREFIX_BYTES * 2:
        return None
    if not all(c in "0123456789abcdef" for c in parts[1]) or len(parts[2]) < 20:
        return None
    return parts[1]


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    raw_key: str  # shown once; never stored


@transaction.atomic
def api_key_issue(
    *, organization: Organization, label: str, created_by=None, scopes=None
) -> IssuedKey:
    label = (label or "").strip()
    if not label:
        raise ValidationError("An API key needs a label (what or who uses it).")
    if len(label) > 100:
        raise ValidationError("The label is longer than 100 characters.")
    if organization.is_public:
        raise ValidationError("API keys belong to an organisation, not to the platform.")
    prefix = secrets.token_hex(API_KEY_PREFIX_BYTES)
    raw_key = f"ie_{prefix}_{secrets.token_urlsafe(API_KEY_SECRET_BYTES)}"
    api_key = ApiKey.objects.create(
        organization=organization,
        label=label,
        prefix=prefix,
        key_hash=api_key_hash(raw_key),
        scopes=list(scopes or []),
        created_by=created_by,
    )
    return IssuedKey(api_key=api_key, raw_key=raw_key)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key. Revoking twice keeps the first revocation time."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_touch(*, api_key_id: int, min_interval_seconds: int = API_KEY_TOUCH_SECONDS) -> None:
    """Record use, at most once a minute per key, so busy keys do not write on every request."""
    now = timezone.now()
    cutoff = now - timezone.timedelta(seconds=min_interval_seconds)
    ApiKey.objects.filter(pk=api_key_id).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=cutoff)
    ).update(last_used_at=now)
