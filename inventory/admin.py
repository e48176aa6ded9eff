"""Staff CRUD for tenant data. These tables live in each organisation's schema, so the admin shows
them only on an organisation's host (e.g. acme.localhost:8000/admin/), where routing has set it."""

from django.contrib import admin
from django.core.paginator import Paginator
from django.utils.functional import cached_property

from inventory.models import Item, LedgerEntry, Location, Lot


class TenantOnlyAdmin(admin.ModelAdmin):
    def has_module_permission(self, request):
        return getattr(request, "tenant", None) is not None and super().has_module_permission(
            request
        )

    def has_view_permission(self, request, obj=None):
        return getattr(request, "tenant", None) is not None and super().has_view_permission(
            request, obj
        )


@admin.register(Item)
class ItemAdmin(TenantOnlyAdmin):
    list_display = ["sku", "name", "unit", "is_active"]
    search_fields = ["sku", "name"]
    list_filter = ["unit", "is_active"]


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
        from django.db import connection

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
