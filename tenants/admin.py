from django.contrib import admin, messages
from django.db.models import QuerySet
from django.utils.html import format_html

from tenants.models import ApiKey, Domain, Membership, Organization
from tenants.services import api_key_revoke, organization_create


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "schema_name", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["slug", "name"]
    inlines = [DomainInline, MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        return ["id", "schema_name", "created_at"] + (["slug"] if obj else [])

    def get_queryset(self, request) -> QuerySet:
        return super().get_queryset(request).tenants().prefetch_related("domains")

    def get_list_display(self, request):
        # Items, locations, lots and the ledger live in each organisation's schema, so their admin
        # is on the organisation's own host (the platform host does not list them): link to it.
        port = request.get_port()
        suffix = "" if port in ("80", "443") else f":{port}"

        @admin.display(description="Tenant data")
        def tenant_admin(org):
            domain = next((d.domain for d in org.domains.all() if d.is_primary), None)
            if domain is None:
                return "no domain"
            return format_html('<a href="//{}{}/admin/">{} admin</a>', domain, suffix, org.slug)

        return [*self.list_display, tenant_admin]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # New organisations go through the service: schema, migrations and domain in one place.
        org, _ = organization_create(slug=obj.slug, name=obj.name, is_active=obj.is_active)
        obj.pk, obj.schema_name = org.pk, org.schema_name
        obj._state.adding = False

    def has_delete_permission(self, request, obj=None):
        return False  # schemas are never dropped from a click; deactivate instead


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "label", "organization", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["organization"]
    search_fields = ["prefix", "label"]
    readonly_fields = [
        "prefix",
        "key_hash",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
        "organization",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are issued on the owner's page or by `issue_api_key`, shown once

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            api_key_revoke(api_key=key)
        messages.success(request, f"Revoked {queryset.count()} key(s).")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    autocomplete_fields = ["user"]
