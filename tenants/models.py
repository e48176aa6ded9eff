"""Organisations (tenants), their domains, memberships and API keys. All live in the public schema."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

SLUG_PATTERN = r"^[a-z][a-z0-9-]{1,40}[a-z0-9]$"
slug_validator = RegexValidator(
    SLUG_PATTERN,
    "Use 3-42 lowercase letters, digits and hyphens, starting with a letter and not ending in a hyphen.",
)
RESERVED_SLUGS = frozenset({"public", "www", "admin", "api", "static"})
# Schemas no organisation may take (besides every pg_* one and any schema that already exists).
RESERVED_SCHEMAS = frozenset({"public", "information_schema"})


class OrganizationQuerySet(models.QuerySet):
    def tenants(self) -> OrganizationQuerySet:
        """Every organisation but the public one (the platform host's tenant, which holds no
        organisation's data): what pages, commands and jobs mean by "the organisations"."""
        return self.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME)


class Organization(TenantMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=42, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    auto_create_schema = True
    auto_drop_schema = False

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        db_table = "organizations"
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_public(self) -> bool:
        return self.schema_name == settings.PUBLIC_SCHEMA_NAME

    def clean(self) -> None:
        # The admin's add form validates here, so a reserved slug is a form error there too.
        super().clean()
        if self._state.adding and self.slug:
            from tenants.services import organization_slug_check

            try:
                organization_slug_check(self.slug)
            except ValidationError as err:
                raise ValidationError({"slug": err.messages}) from None


class Domain(DomainMixin):
    class Meta:
        db_table = "organization_domains"

    def __str__(self) -> str:
        return self.domain


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        SUPPORT = "support", "Support"
        ADMIN = "admin", "Admin"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "organization_memberships"
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization"], name="membership_user_org_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=["owner", "support", "admin"]),
                name="membership_role_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization} ({self.role})"


class ApiKey(models.Model):
    """An API key: `ie_<prefix>_<secret>`. Only the prefix (for lookup) and an HMAC of the whole
    key are stored, so a database leak does not leak usable keys."""

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="api_keys"
    )
    label = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "organization_api_keys"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"ie_{self.prefix}_… ({self.label})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
