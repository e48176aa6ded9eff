from django.contrib import admin

from reconciliation.models import Discrepancy, ReconciliationRun


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(admin.ModelAdmin):
    list_display = [
        "organization",
        "mode",
        "dry_run",
        "status",
        "started_at",
        "keys_checked",
        "differences_found",
        "auto_corrected",
        "opened",
    ]
    list_filter = ["organization", "mode", "status"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Discrepancy)
class DiscrepancyAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "organization",
        "sku",
        "location_code",
        "lot_code",
        "difference",
        "status",
        "resolved_by",
    ]
    list_filter = ["organization", "status", "kind"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # resolved on the review pages, which record who and why
