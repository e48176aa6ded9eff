"""Fleet runs: one operation over many organisations, one per-organisation JobRun at a time per
slot. The per-org JobRuns (operations) are the truth; a fleet run's items only say which JobRun
each organisation is at, and are advanced from those runs' outcomes (dashboard/fleet_runs.py)."""

from __future__ import annotations

from django.db import models

from operations.models import JobRun
from tenants.models import Organization


class FleetRun(models.Model):
    class Operation(models.TextChoices):
        MIGRATE = "migrate", "apply pending migrations"
        BACKFILL = "backfill", "backfill"
        VALIDATE = "validate", "validate"
        RECONCILE = "reconcile", "reconcile"
        BACKUP = "backup", "back up"

    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"
        CANCELLED = "cancelled"
        FINISHED = "finished"

    OPEN = (Status.ACTIVE, Status.PAUSED)

    operation = models.CharField(max_length=20, choices=Operation.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    parallel = models.PositiveSmallIntegerField(default=2)
    selection = models.CharField(max_length=200, blank=True, default="")  # "all", "needs-attention"
    requested_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "dashboard_fleet_runs"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"fleet {self.operation} #{self.pk} ({self.status})"


class FleetRunItem(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        SKIPPED = "skipped"  # cancelled before it started

    fleet_run = models.ForeignKey(FleetRun, on_delete=models.CASCADE, related_name="items")
    # None for the one item of a whole-database operation (backup).
    organization = models.ForeignKey(Organization, null=True, on_delete=models.CASCADE)
    position = models.PositiveIntegerField()  # the stable (slug) order
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    # No database constraint: job runs are operations' records, pruned and truncated on their
    # own (a TRUNCATE of operations_job_runs must not need this table); a missing run reads as
    # None, and the advance starts that organisation again.
    job_run = models.ForeignKey(
        JobRun, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True, default="")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "dashboard_fleet_run_items"
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(
                fields=["fleet_run", "organization"], name="fleetrunitem_one_per_org"
            )
        ]
        indexes = [
            models.Index(fields=["fleet_run", "state", "position"], name="fleetitem_state_idx")
        ]

    def __str__(self) -> str:
        return f"{self.fleet_run_id}/{self.organization_id}: {self.state}"
