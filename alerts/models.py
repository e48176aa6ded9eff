"""Alerts (public schema): the channels people are reached on, the alerts the evaluator opens and
resolves from what the other apps record, and every delivery attempt. Nothing else imports this
app: it reads operations, reconciliation and inventory, never the other way round."""

from __future__ import annotations

import secrets

from django.db import models


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class Channel(models.Model):
    """Where messages go. A channel without an organisation is a platform (admins') channel and
    receives every alert; an organisation's channel receives that organisation's discrepancies."""

    class Kind(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"
        APPRISE = "apprise", "chat (Apprise URL)"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # email: comma-separated addresses; webhook: the URL that receives the JSON POST; apprise:
    # a service URL Apprise understands (slack://..., msteams://..., matrix://..., json://...).
    target = models.CharField(max_length=500)
    # webhook: HMAC-SHA256 key of the X-Alert-Signature header (the receiver holds a copy).
    secret = models.CharField(max_length=100, blank=True, default=new_secret)
    organization = models.ForeignKey(
        "tenants.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_channels",
    )
    is_active = models.BooleanField(default=True)
    created_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "alerts_channels"
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Alert(models.Model):
    class State(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"

    # Stable identity of what is wrong ("backup:failed", "job:reconcile:acme", ...): while one
    # alert of a key is open, the same condition opens nothing new however often it is evaluated.
    key = models.CharField(max_length=200)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    title = models.CharField(max_length=200)
    summary = models.TextField()
    link = models.CharField(max_length=500, blank=True, default="")
    organization = models.ForeignKey(
        "tenants.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    since = models.DateTimeField(help_text="when the condition began (from the facts)")
    opened_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        db_table = "alerts_alerts"
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(state="open"), name="alerts_one_open_per_key"
            )
        ]
        indexes = [models.Index(fields=["organization", "-opened_at"], name="alerts_org_idx")]

    def __str__(self) -> str:
        return f"{self.key} {self.state}"


class Delivery(models.Model):
    """One message to one channel: an alert opening or resolving, or a channel test."""

    class Event(models.TextChoices):
        OPENED = "opened"
        RESOLVED = "resolved"
        TEST = "test"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        RETRYING = "retrying"
        FAILED = "failed"

    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=10, choices=Event.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "alerts_deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="alerts_due_idx")]

    def __str__(self) -> str:
        return f"{self.event} -> {self.channel_id} {self.status}"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    at = models.DateTimeField(auto_now_add=True)
    ok = models.BooleanField()
    error = models.TextField(blank=True, default="")
    seconds = models.FloatField(default=0)

    class Meta:
        db_table = "alerts_delivery_attempts"
        ordering = ["delivery_id", "number"]

    def __str__(self) -> str:
        return f"#{self.number} {'ok' if self.ok else self.error[:40]}"
