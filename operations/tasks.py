"""django-q2 task entry points for platform-wide jobs. Tasks without a tenant run in public on
purpose: they enter the public schema explicitly, since a worker keeps whatever schema its
previous task left on the connection."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from django_tenants.utils import schema_context

from operations.backups import backup_create, backups_monitor
from operations.jobs import job_run_execute
from operations.models import WorkerHeartbeat


def worker_heartbeat() -> str:
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        now = timezone.now()
        WorkerHeartbeat.objects.update_or_create(
            cluster=settings.Q_CLUSTER["name"], defaults={"beat_at": now}
        )
    return now.isoformat()


def _backup_summary(record) -> dict:
    return {
        "file": record.file_name,
        "size_bytes": record.size_bytes,
        "sha256": record.sha256,
        "seconds": record.duration_seconds,
        "summary": f"{record.file_name}: {record.size_bytes} bytes",
    }


def backup_database(job_id: int | None = None) -> dict:
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        if job_id is None:
            return _backup_summary(backup_create())
        return job_run_execute(
            job_id, lambda progress: _backup_summary(backup_create(progress=progress))
        ).result


def monitor_backups() -> dict:
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        result = backups_monitor()
    if not result.ok:
        # A failed task shows up in django-q2's failed list (and its admin) as well as in the log.
        raise RuntimeError(f"backup monitor: {result.message}")
    return {"ok": True, "message": result.message}
