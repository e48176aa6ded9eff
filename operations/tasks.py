"""django-q2 task entry points for platform-wide jobs. Tasks without a tenant run in public on
purpose: they enter the public schema explicitly, since a worker keeps whatever schema its
previous task left on the connection."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from django_tenants.utils import schema_context

from operations.models import WorkerHeartbeat


def worker_heartbeat() -> str:
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        now = timezone.now()
        WorkerHeartbeat.objects.update_or_create(
            cluster=settings.Q_CLUSTER["name"], defaults={"beat_at": now}
        )
    return now.isoformat()
