"""Reconciliation history (public schema): runs per organisation and the discrepancies they found.
Kept for good, so support can see what happened last month."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Value
from django.db.models.functions import Coalesce

from inventory.models import BALANCE_QTY, QTY


class ReconciliationRun(models.Model):
    class Mode(models.TextChoices):
        FULL = "full"
        INCREMENTAL = "incremental"

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    organization = models.ForeignKey(
        "tenants.Organization", on_delete=models.CASCADE, related_name="reconciliation_runs"
    )
    mode = models.CharField(max_length=12, choices=Mode.choices)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    keys_checked = models.PositiveIntegerField(default=0)
    differences_found = models.PositiveIntegerField(default=0)
    auto_corrected = models.PositiveIntegerField(default=0)
    # Honest counts: `opened` are new discrepancies only; a difference already queued is
    # `still_open`, one matching a dismissal stays dismissed, and open ones whose difference is
    # gone are closed by the run (`auto_closed`).
    opened = models.PositiveIntegerField(default=0, help_text="new discrepancies opened")
    still_open = models.PositiveIntegerField(default=0, help_text="differences already queued")
    kept_dismissed = models.PositiveIntegerField(
        default=0, help_text="differences equal to a dismissed one: left dismissed"
    )
    auto_closed = models.PositiveIntegerField(
        default=0, help_text="open discrepancies closed because their difference is gone"
    )
    since_xid = models.BigIntegerField(
        null=True, blank=True, help_text="incremental: ledger rows from this transaction id on"
    )
    watermark_xid = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="the snapshot's xmin: where the next incremental run starts",
    )
    tolerance = models.DecimalField(**QTY)
    error = models.TextField(blank=True, default="")
    triggered_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        db_table = "reconciliation_runs"
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["organization", "-started_at"], name="recon_run_org_started_idx")
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.mode} {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def seconds(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None


class Discrepancy(models.Model):
    class Kind(models.TextChoices):
        MISMATCH = "mismatch", "balance differs from ledger"
        MISSING_BALANCE = "missing_balance", "ledger rows but no balance row"
        ORPHAN_BALANCE = "orphan_balance", "balance row but no ledger rows"

    class Status(models.TextChoices):
        AUTO_CORRECTED = "auto_corrected", "auto-corrected"
        OPEN = "open"
        APPROVED = "approved"
        DISMISSED = "dismissed"
        VANISHED = "vanished", "vanished before review"
        RESOLVED = "resolved", "resolved by the system"

    organization = models.ForeignKey(
        "tenants.Organization", on_delete=models.CASCADE, related_name="discrepancies"
    )
    run = models.ForeignKey(
        ReconciliationRun, on_delete=models.CASCADE, related_name="discrepancies"
    )
    item_id = models.BigIntegerField()
    location_id = models.BigIntegerField()
    lot_id = models.BigIntegerField(null=True, blank=True)
    sku = models.CharField(max_length=64)
    # Copied from the tenant's item when found, so the cross-organisation queue shows them
    # without reading every tenant schema.
    item_name = models.CharField(max_length=200, blank=True, default="")
    unit = models.CharField(max_length=2, blank=True, default="")
    location_code = models.CharField(max_length=64)
    lot_code = models.CharField(max_length=64, blank=True, default="")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # As wide as the balance column (inventory.models.BALANCE_QTY): a discrepancy on a balance
    # above 10**12 must be storable.
    ledger_sum = models.DecimalField(**BALANCE_QTY)
    balance = models.DecimalField(**BALANCE_QTY, null=True, blank=True)
    difference = models.DecimalField(**BALANCE_QTY, help_text="ledger sum minus balance")
    abs_difference = models.DecimalField(**BALANCE_QTY)
    status = models.CharField(max_length=16, choices=Status.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_run = models.ForeignKey(
        ReconciliationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True, default="")
    balance_before = models.DecimalField(**BALANCE_QTY, null=True, blank=True)
    balance_after = models.DecimalField(**BALANCE_QTY, null=True, blank=True)
    cleared_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="dismissed: when the difference was seen gone; the dismissal then no longer "
        "covers the same difference coming back",
    )
    supersedes = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="superseded_by",
        help_text="the dismissed discrepancy of the same key, with another difference, that this one follows",
    )

    class Meta:
        db_table = "reconciliation_discrepancies"
        verbose_name_plural = "Discrepancies"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["status", "organization", "-abs_difference"], name="discrepancy_queue_idx"
            ),
            models.Index(
                fields=["organization", "item_id", "location_id", "lot_id"],
                name="discrepancy_key_idx",
            ),
        ]
        constraints = [
            # At most one open discrepancy per key: a later run updates it instead of adding another.
            # COALESCE rather than NULLS NOT DISTINCT, which needs PostgreSQL 15.
            models.UniqueConstraint(
                "organization",
                "item_id",
                "location_id",
                Coalesce("lot_id", Value(0)),
                condition=models.Q(status="open"),
                name="discrepancy_one_open_per_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku}@{self.location_code}/{self.lot_code or '-'} {self.difference} ({self.status})"
