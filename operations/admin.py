from django.contrib import admin

from operations.models import BackupCheck, BackupRecord, JobRun, WorkerHeartbeat


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(JobRun)
class JobRunAdmin(ReadOnly):
    list_display = [
        "id",
        "kind",
        "schema_name",
        "status",
        "done",
        "total",
        "message",
        "created_at",
        "finished_at",
    ]
    list_filter = ["kind", "status"]


@admin.register(BackupRecord)
class BackupRecordAdmin(ReadOnly):
    list_display = ["file_name", "status", "size_bytes", "started_at", "duration_seconds"]


admin.site.register(BackupCheck, ReadOnly)
admin.site.register(WorkerHeartbeat, ReadOnly)
