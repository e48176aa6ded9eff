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
        REPAIR = "repair"
        RESTORE_DRILL = "restore_drill"
        RESTORE_ORG = "restore_org"
        EXPORT = "export"  # a balance CSV written for download (inventory/jobs.py)
        PITR_BASE_BACKUP = "pitr_base_backup"  # operations/wal_archive.py

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        # The process running it died (or stopped beating) before it finished; see jobs.py.
        INTERRUPTED = "interrupted"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.INTERRUPTED)
    # The kinds an organisation's runbook has a button for (its page starts them, and a Restart
    # posts back to it); here rather than in the dashboard, which imports this app, not the reverse.
    RUNBOOK_KINDS = frozenset({Kind.BACKUP, Kind.MIGRATE, Kind.REPAIR, Kind.BACKFILL, Kind.VALIDATE})

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
    # Who runs it ("host pid N"), its last sign of life, and its django-q task (to drop a stale
    # queue entry once the run is known to be dead). Options the task needs again on a restart.
    worker = models.CharField(max_length=200, blank=True, default="")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True, default="")
    params = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "operations_job_runs"
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["schema_name", "kind", "-created_at"], name="jobrun_schema_kind_idx"
            )
        ]
        constraints = [
            # At most one queued or running run per kind and schema, whichever door starts it.
            models.UniqueConstraint(
                fields=["kind", "schema_name"],
                condition=models.Q(status__in=["queued", "running"]),
                name="jobrun_one_active_per_kind_schema",
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

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    def restart_form(self) -> dict | None:
        """Where a Restart button posts to start the same kind again: the door that started it,
        so its permission checks apply. None when there is no such door (a rollback asks for
        the slug to be typed; the monitor runs on its schedule)."""
        from django.urls import reverse

        from tenants.models import Organization

        if self.kind == self.Kind.BACKUP and not self.schema_name:
            return {"url": reverse("backup_now"), "fields": {}}
        org = Organization.objects.filter(schema_name=self.schema_name).first()
        if not self.schema_name or org is None:
            return None
        if self.kind == self.Kind.RECONCILE:
            mode = self.params.get("mode", "full")
            return {"url": reverse("reconcile_now"), "fields": {"org": org.slug, "mode": mode}}
        if self.kind in self.RUNBOOK_KINDS:
            return {"url": reverse("runbook_job", args=[org.slug, self.kind]), "fields": {}}
        return None


class RemoteStatus(models.TextChoices):
    VERIFIED = "verified"  # uploaded, read back, checksum equal
    FAILED = "failed"  # upload refused or the read-back differed; remote_error says which
    PRUNED = "pruned"  # deleted from the bucket by its retention


class BackupRecord(models.Model):
    """One pg_dump archive. Only status=ok rows with their file present count as backups."""

    RemoteStatus = RemoteStatus

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
    # What the database held when the dump was taken, read in the dump's own snapshot:
    # {schema: {"ledger_rows", "ledger_qty", "balance_rows", "balance_qty"}}; a drill compares.
    figures = models.JSONField(default=dict, blank=True)
    # The off-site copy (operations/offsite.py): encrypted object, its SHA-256 re-read after upload.
    remote_status = models.CharField(
        max_length=10, choices=RemoteStatus.choices, blank=True, default=""
    )
    remote_key = models.CharField(max_length=500, blank=True, default="")
    remote_size = models.BigIntegerField(default=0)
    remote_sha256 = models.CharField(max_length=64, blank=True, default="")
    remote_verified_at = models.DateTimeField(null=True, blank=True)
    remote_error = models.TextField(blank=True, default="")

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


class RestoreDrill(models.Model):
    """A restore of the newest backup into a scratch database, checked, then dropped (drills.py)."""

    # The backup's file name, not a foreign key: backups are pruned, drills are kept.
    backup_file = models.CharField(max_length=255, blank=True, default="")
    source = models.CharField(max_length=10, blank=True, default="")  # "remote" or "local"
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(default=0)
    ok = models.BooleanField(default=False)
    message = models.CharField(max_length=500, blank=True, default="")
    # Per schema: validation outcome and the recorded versus restored figures.
    details = models.JSONField(default=dict, blank=True)
    requested_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        db_table = "operations_restore_drills"
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"drill {'ok' if self.ok else 'FAIL'} {self.started_at:%Y-%m-%d %H:%M}"


class HealthSnapshot(models.Model):
    """One /health check's last result ("migrations", "balances", ...), computed over every
    organisation by the worker each minute (operations/health.py); /health reads these rows
    instead of touching each schema. Emptied by the event trigger on any DDL and after migrate."""

    name = models.CharField(max_length=50, primary_key=True)
    result = models.JSONField()
    checked_at = models.DateTimeField()

    class Meta:
        db_table = "operations_health_snapshot"

    def __str__(self) -> str:
        return f"{self.name} at {self.checked_at:%H:%M:%S}"
