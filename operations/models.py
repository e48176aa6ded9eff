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


class JobRun(models.Model):
    """Progress and outcome of a long job (backfill, reconciliation, backup), for pages to poll."""

    class Kind(models.TextChoices):
        BACKFILL = "backfill"
        RECONCILE = "reconcile"
        BACKUP = "backup"
        BACKUP_MONITOR = "backup_monitor"
        VALIDATE = "validate"
        MIGRATE = "migrate"
        ROLLBACK = "rollback"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    schema_name = models.CharField(max_length=63, blank=True, default="")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True, default="")
    error = models.TextField(blank=True, default="")
    result = models.JSONField(default=dict, blank=True)
    requested_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "operations_job_runs"
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["schema_name", "kind", "-created_at"], name="jobrun_schema_kind_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.schema_name or 'platform'} {self.status}"

    @property
    def percent(self) -> int:
        return (
            int(100 * self.done / self.total)
            if self.total
            else (100 if self.status == "succeeded" else 0)
        )


class BackupRecord(models.Model):
    """One pg_dump archive. Only status=ok rows with their file present count as backups."""

    class Status(models.TextChoices):
        OK = "ok"
        FAILED = "failed"
        PRUNED = "pruned"

    file_name = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=Status.choices)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(default=0)
    error = models.TextField(blank=True, default="")

    class Meta:
        db_table = "operations_backups"
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.status})"


class BackupCheck(models.Model):
    """A run of the backup monitor and what it concluded."""

    checked_at = models.DateTimeField(auto_now_add=True)
    ok = models.BooleanField()
    message = models.CharField(max_length=500)
    backup = models.ForeignKey(
        BackupRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="checks"
    )

    class Meta:
        db_table = "operations_backup_checks"
        ordering = ["-checked_at"]

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'FAIL'} {self.message}"
