"""Platform-wide operational records (public schema): worker heartbeats, job runs, backups."""

from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """Written by a scheduled task; /health reads its age to tell whether the worker runs."""

    cluster = models.CharField(max_length=100, unique=True)
    beat_at = models.DateTimeField()

    class Meta:
        db_table = "operations_worker_heartbeats"

    def __str__(self) -> str:
        return f"{self.cluster} @ {self.beat_at:%Y-%m-%d %H:%M:%S}"
