"""Tenant data: items, locations, lots, the append-only ledger and the trigger-kept balances.

Every table here exists once per organisation schema. Quantities are NUMERIC(18,6) in the
item's canonical unit; never floats. Balances are NUMERIC(38,6): a sum of ledger rows must not
overflow (sql/v4_balance_qty_wide.sql).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

QTY = {"max_digits": 18, "decimal_places": 6}
BALANCE_QTY = {"max_digits": 38, "decimal_places": 6}


class Unit(models.TextChoices):
    GRAM = "g", "gram"
    MILLILITRE = "ml", "millilitre"
    EACH = "ea", "each"


class MovementKind(models.TextChoices):
    RECEIPT = "receipt"
    ISSUE = "issue"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"
    ADJUSTMENT = "adjustment"
    COUNT = "count"
    OPENING = "opening"


class Item(models.Model):
    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    unit = models.CharField(max_length=2, choices=Unit.choices)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "inventory_items"
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(unit__in=Unit.values), name="item_unit_valid"
            ),
        ]
        indexes = [models.Index(fields=["name"], name="inventory_items_name_idx")]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class Location(models.Model):
    code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    site = models.CharField(max_length=100, blank=True, default="")
    is_active = models.BooleanField(default=True)

    class Meta:
        db_table = "inventory_locations"
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Lot(models.Model):
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="lots")
    code = models.CharField(max_length=64)
    expires_on = models.DateField(null=True, blank=True)

    class Meta:
        db_table = "inventory_lots"
        ordering = ["item_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["item", "code"], name="lot_item_code_unique")
        ]

    def __str__(self) -> str:
        return self.code


class Posting(models.Model):
    """One call that posted ledger entries; holds the idempotency key so a retry returns the
    original entries instead of posting twice."""

    idempotency_key = models.CharField(max_length=200, unique=True, null=True, blank=True)
    request_hash = models.CharField(max_length=64)
    entry_count = models.PositiveIntegerField()
    recorded_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "inventory_postings"

    def __str__(self) -> str:
        return f"posting {self.id} ({self.entry_count} entries)"


class LedgerEntry(models.Model):
    """A stock movement. Append-only: the database refuses UPDATE, DELETE and TRUNCATE."""

    id = models.BigAutoField(primary_key=True)
    # No single-column indexes on item and location: the composite indexes below lead with them,
    # and every extra index slows each insert (make bench).
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="+", db_index=False)
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    qty_canonical = models.DecimalField(**QTY)
    kind = models.CharField(max_length=16, choices=MovementKind.choices)
    reference = models.CharField(max_length=200, blank=True, default="")
    posting = models.ForeignKey(
        Posting, on_delete=models.PROTECT, null=True, blank=True, related_name="entries"
    )
    occurred_at = models.DateTimeField(default=timezone.now)
    recorded_at = models.DateTimeField(default=timezone.now)
    recorded_by = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        db_table = "inventory_ledger"
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(condition=~models.Q(qty_canonical=0), name="ledger_qty_nonzero"),
            models.CheckConstraint(
                condition=models.Q(kind__in=MovementKind.values), name="ledger_kind_valid"
            ),
        ]
        indexes = [
            # Ledger history of one key / one item, newest first (pages, reconciliation SUMs).
            models.Index(fields=["item", "location", "lot", "id"], name="inventory_ledger_key_idx"),
            # Item page and /api/ledger?item=[&location=]: newest first without a sort (issue 18.1).
            models.Index(fields=["item", "id"], name="inventory_ledger_item_id_idx"),
            models.Index(fields=["item", "location", "id"], name="inventory_ledger_item_loc_idx"),
            models.Index(fields=["location", "id"], name="inventory_ledger_location_idx"),
            models.Index(fields=["occurred_at"], name="inventory_ledger_occurred_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.kind} {self.qty_canonical}"


class Balance(models.Model):
    """inventory_balances, created and kept by raw SQL (sql/v1_inventory_balances.sql): one row per
    (item, location, lot) with "no lot" as one key. Read-only from Django."""

    id = models.BigAutoField(primary_key=True)
    item = models.ForeignKey(Item, on_delete=models.DO_NOTHING, related_name="+")
    location = models.ForeignKey(Location, on_delete=models.DO_NOTHING, related_name="+")
    lot = models.ForeignKey(Lot, on_delete=models.DO_NOTHING, null=True, related_name="+")
    qty_canonical = models.DecimalField(**BALANCE_QTY)
    last_ledger_id = models.BigIntegerField()
    updated_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "inventory_balances"

    def __str__(self) -> str:
        return f"{self.item_id}/{self.location_id}/{self.lot_id or '-'}: {self.qty_canonical}"


class InventorySettings(models.Model):
    """inventory_settings: one row per organisation schema (sql/v5_stock_policy.sql), read by the
    balance trigger. Kept in the tenant's own schema so the trigger needs no cross-schema read."""

    id = models.BooleanField(primary_key=True, default=True)
    no_negative_stock = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.TextField(blank=True, default="")

    class Meta:
        managed = False
        db_table = "inventory_settings"
        verbose_name_plural = "inventory settings"

    def __str__(self) -> str:
        return f"no negative stock: {'on' if self.no_negative_stock else 'off'}"
