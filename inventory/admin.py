"""Staff CRUD for tenant data. These tables live in each organisation's schema, so the admin shows
them only on an organisation's host (e.g. acme.localhost:8000/admin/), where routing has set it."""

from functools import wraps

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.urls import URLPattern
from django.utils.functional import cached_property

from inventory.models import Item, LedgerEntry, Location, Lot


def on_tenant_schema() -> bool:
    """The connection is in an organisation's schema, where these tables exist. (On the platform
    host it is in `public`, which has none of them: a query there is a ProgrammingError.)"""
    return connection.schema_name != settings.PUBLIC_SCHEMA_NAME


class TenantOnlyAdmin(admin.ModelAdmin):
    """Not listed on the platform host, and every view there is a 403 that names the right host;
    on an organisation's host (routing has set the schema) the ordinary admin."""

    def has_module_permission(self, request):
        return on_tenant_schema() and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return on_tenant_schema() and super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return on_tenant_schema() and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return on_tenant_schema() and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return on_tenant_schema() and super().has_delete_permission(request, obj)

    def get_urls(self):
        # Wrap every view of this model (changelist, add, change, history, delete, autocomplete)
        # so that the platform host explains where the data is instead of a bare 403.
        def tenant_host_required(view):
            @wraps(view)
            def wrapper(request, *args, **kwargs):
                # Signed-out visitors still get the admin's login page first.
                if not on_tenant_schema() and self.admin_site.has_permission(request):
                    raise PermissionDenied(
                        f"{self.model._meta.verbose_name_plural.capitalize()} live in each "
                        "organisation's own schema: open the admin on the organisation's host "
                        "(e.g. acme.localhost:8000/admin/); Organizations lists every host."
                    )
                return view(request, *args, **kwargs)

            return wrapper

        return [
            URLPattern(p.pattern, tenant_host_required(p.callback), p.default_args, p.name)
            if isinstance(p, URLPattern)
            else p
            for p in super().get_urls()
        ]


@admin.register(Item)
class ItemAdmin(TenantOnlyAdmin):
    list_display = ["sku", "name", "unit", "is_active"]
    search_fields = ["sku", "name"]
    list_filter = ["unit", "is_active"]

    def get_readonly_fields(self, request, obj=None):
        # Ledger quantities are stored in the item's unit: changing it would reinterpret them all.
        return ["created_at"] + (["unit"] if obj else [])


@admin.register(Location)
class LocationAdmin(TenantOnlyAdmin):
    list_display = ["code", "name", "site", "is_active"]
    search_fields = ["code", "name"]


@admin.register(Lot)
class LotAdmin(TenantOnlyAdmin):
    list_display = ["code", "item", "expires_on"]
    search_fields = ["code", "item__sku"]
    raw_id_fields = ["item"]


class LargeTablePaginator(Paginator):
    """The ledger is too large to COUNT(*) on every page: use the planner's estimate."""

    @cached_property
    def count(self):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass('inventory_ledger')"
            )
            row = cursor.fetchone()
        estimate = int(row[0]) if row and row[0] and row[0] > 0 else 0
        return estimate or super().count


@admin.register(LedgerEntry)
class LedgerEntryAdmin(TenantOnlyAdmin):
    list_display = [
        "id",
        "occurred_at",
        "kind",
        "item",
        "location",
        "lot",
        "qty_canonical",
        "reference",
        "recorded_by",
    ]
    list_select_related = ["item", "location", "lot"]
    list_filter = ["kind"]
    paginator = LargeTablePaginator
    show_full_result_count = False
    ordering = ["-id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # append-only: corrections are new reversing entries

    def has_delete_permission(self, request, obj=None):
        return False
