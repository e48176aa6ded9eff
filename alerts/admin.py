from django.contrib import admin, messages

from alerts.forms import ChannelAdminForm
from alerts.models import Alert, Channel, Delivery, DeliveryAttempt
from alerts.services import channel_test


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelAdminForm
    list_display = ("name", "kind", "target", "organization", "is_active", "created_at")
    list_filter = ("kind", "is_active")
    search_fields = ("name", "target")
    actions = ["send_test"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)

    @admin.action(description="Send a test to the selected channels")
    def send_test(self, request, queryset):
        for channel in queryset:
            d = channel_test(channel=channel, requested_by=request.user.get_username())
            if d.status == Delivery.Status.SENT:
                self.message_user(request, f"{channel}: delivered", messages.SUCCESS)
            else:
                self.message_user(request, f"{channel}: {d.last_error}", messages.ERROR)


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ("number", "at", "ok", "error", "seconds")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "alert", "channel", "event", "status", "attempts", "sent_at")
    list_filter = ("status", "event")
    readonly_fields = [f.name for f in Delivery._meta.fields]
    inlines = [AttemptInline]

    def has_add_permission(self, request):
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("key", "state", "title", "organization", "opened_at", "resolved_at")
    list_filter = ("state",)
    search_fields = ("key", "title")
    readonly_fields = [f.name for f in Alert._meta.fields]

    def has_add_permission(self, request):
        return False
