"""Writes: evaluate the rules (open and resolve alerts, queue their deliveries in the same
transaction), send one delivery attempt, test a channel, manage channels."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import schema_context

from alerts import rules, transports
from alerts.models import Alert, Channel, Delivery, DeliveryAttempt

log = logging.getLogger(__name__)
# One evaluation at a time (the schedule, the command, a second worker): the rest wait, then
# see what the first one opened. The partial unique index is the backstop.
EVALUATION_LOCK = 0x616C657274  # "alert"
ORG_ROUTED_PREFIXES = ("discrepancies:",)


@dataclass
class Evaluation:
    opened: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    still_open: int = 0
    deliveries: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.opened)} opened, {len(self.resolved)} resolved, {self.still_open} still "
            f"open, {len(self.deliveries)} deliveries queued, {len(self.retried)} retries queued"
        )


def channels_for(alert: Alert) -> list[Channel]:
    """Platform channels get every alert; an organisation's own channels get its discrepancies."""
    routed = Q(organization=None)
    if alert.organization_id and alert.key.startswith(ORG_ROUTED_PREFIXES):
        routed |= Q(organization_id=alert.organization_id)
    return list(Channel.objects.filter(routed, is_active=True).order_by("id"))


def _enqueue(delivery_ids: list[int]) -> None:
    """After the commit, so the worker finds the rows and a rollback sends nothing."""
    if not delivery_ids:
        return

    def send():
        from django_q.tasks import async_task

        for delivery_id in delivery_ids:
            async_task(
                "alerts.tasks.delivery_send", delivery_id, task_name=f"alert delivery {delivery_id}"
            )

    transaction.on_commit(send)


def _queue_deliveries(alert: Alert, event: str) -> list[int]:
    created = Delivery.objects.bulk_create(
        [Delivery(alert=alert, channel=c, event=event) for c in channels_for(alert)]
    )
    return [d.id for d in created]


def alerts_evaluate() -> Evaluation:
    """Compare what should be open with what is open: open the new, resolve the gone, leave the
    rest (no message in between), and queue due retries of failed deliveries."""
    result = Evaluation()
    with schema_context(settings.PUBLIC_SCHEMA_NAME), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [EVALUATION_LOCK])
        now = timezone.now()
        found = {f.key: f for f in rules.findings()}
        open_alerts = {a.key: a for a in Alert.objects.filter(state=Alert.State.OPEN)}
        for key, finding in found.items():
            alert = open_alerts.get(key)
            if alert is not None:
                result.still_open += 1
                if alert.summary != finding.summary:  # fresher facts, no new message
                    alert.summary = finding.summary
                    alert.save(update_fields=["summary"])
                continue
            try:
                with transaction.atomic():
                    alert = Alert.objects.create(
                        key=key,
                        title=finding.title,
                        summary=finding.summary,
                        link=finding.link,
                        organization_id=finding.organization_id,
                        since=finding.since,
                        opened_at=now,
                    )
            except IntegrityError:  # another evaluation opened it first
                continue
            result.opened.append(alert)
            result.deliveries += _queue_deliveries(alert, Delivery.Event.OPENED)
        for key, alert in open_alerts.items():
            if key in found:
                continue
            alert.state, alert.resolved_at = Alert.State.RESOLVED, now
            alert.resolution = "the condition is no longer found"
            alert.save(update_fields=["state", "resolved_at", "resolution"])
            result.resolved.append(alert)
            result.deliveries += _queue_deliveries(alert, Delivery.Event.RESOLVED)
        due = Delivery.objects.filter(
            status=Delivery.Status.RETRYING, next_attempt_at__lte=now
        ).select_for_update(skip_locked=True)
        result.retried = list(due.values_list("id", flat=True))
        Delivery.objects.filter(id__in=result.retried).update(status=Delivery.Status.PENDING)
        _enqueue(result.deliveries + result.retried)
    for alert in result.opened + result.resolved:
        log.info("alert %s %s: %s", alert.key, alert.state, alert.summary)
    return result


def message_for(delivery: Delivery) -> tuple[str, str, dict]:
    """Subject, text body and webhook payload: what failed, since when, where to click."""
    alert = delivery.alert
    if alert is None:
        subject = f"[Inventory Enterprise] Test message for channel {delivery.channel.name}"
        text = "This is a test from the alerts page: the channel works."
        return subject, text, {"event": "test", "channel": delivery.channel.name, "text": text}
    resolved = delivery.event == Delivery.Event.RESOLVED
    subject = f"[Inventory Enterprise] {'RESOLVED' if resolved else 'ALERT'}: {alert.title}"
    when = timezone.localtime(alert.resolved_at if resolved else alert.since)
    text = (
        f"{alert.title}\n\n{alert.summary}\n\n"
        + (f"Resolved at {when:%Y-%m-%d %H:%M %Z}.\n" if resolved else "")
        + f"Open since {timezone.localtime(alert.opened_at):%Y-%m-%d %H:%M %Z}.\n"
        + (f"Where to look: {alert.link}\n" if alert.link else "")
    )
    payload = {
        "event": delivery.event,
        "key": alert.key,
        "state": alert.state,
        "title": alert.title,
        "summary": alert.summary,
        "link": alert.link,
        "since": alert.since.isoformat(),
        "opened_at": alert.opened_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "organization": alert.organization.slug if alert.organization_id else None,
        "text": text,
    }
    return subject, text, payload


def _transport(delivery: Delivery) -> None:
    channel = delivery.channel
    subject, text, payload = message_for(delivery)
    if channel.kind == Channel.Kind.EMAIL:
        to = [a.strip() for a in channel.target.split(",") if a.strip()]
        transports.send_email(to=to, subject=subject, body=text)
    elif channel.kind == Channel.Kind.APPRISE:
        transports.send_apprise(url=channel.target, title=subject, body=text)
    else:
        if channel.organization_id:  # checked again at each send: DNS may have changed
            transports.public_host_required(channel.target)
        transports.send_webhook(url=channel.target, secret=channel.secret, payload=payload)


def backoff_seconds(attempts: int) -> float:
    return settings.ALERT_RETRY_BASE_SECONDS * 2 ** (attempts - 1)


def delivery_attempt(*, delivery_id: int, retry: bool = True) -> Delivery | None:
    """One attempt, recorded: sent, or failed with the error and (under ALERT_MAX_ATTEMPTS) a
    retry after a backoff, which the next evaluation queues. The transport runs outside any
    transaction; the row is locked only to claim it."""
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        with transaction.atomic():
            delivery = (
                Delivery.objects.select_for_update(skip_locked=True)
                .filter(id=delivery_id, status=Delivery.Status.PENDING)
                .first()
            )
            if delivery is None:  # sent, given up, deleted, or another worker holds it
                return Delivery.objects.filter(id=delivery_id).first()
            delivery.attempts += 1
            delivery.status = Delivery.Status.RETRYING  # if this process dies mid-send
            delivery.next_attempt_at = timezone.now() + timedelta(
                seconds=backoff_seconds(delivery.attempts)
            )
            delivery.save(update_fields=["attempts", "status", "next_attempt_at"])
        delivery = Delivery.objects.select_related("alert__organization", "channel").get(
            id=delivery_id
        )
        t0 = time.monotonic()
        error = ""
        try:
            _transport(delivery)
        except Exception as err:  # any failure of the channel is recorded, never raised on
            error = str(err) or type(err).__name__
            if not isinstance(err, transports.DeliveryError):
                error = f"{type(err).__name__}: {error}"
        seconds = time.monotonic() - t0
        DeliveryAttempt.objects.create(
            delivery=delivery, number=delivery.attempts, ok=not error, error=error, seconds=seconds
        )
        if not error:
            delivery.status, delivery.sent_at, delivery.next_attempt_at = (
                "sent",
                timezone.now(),
                None,
            )
            delivery.last_error = ""
        else:
            delivery.last_error = error
            # The backoff counts from the failure, not from the claim: a slow channel's wait
            # is not part of it.
            delivery.next_attempt_at = timezone.now() + timedelta(
                seconds=backoff_seconds(delivery.attempts)
            )
            if not retry or delivery.attempts >= settings.ALERT_MAX_ATTEMPTS:
                delivery.status, delivery.next_attempt_at = Delivery.Status.FAILED, None
            log.warning("alert delivery %s attempt %s: %s", delivery.id, delivery.attempts, error)
        delivery.save(update_fields=["status", "sent_at", "next_attempt_at", "last_error"])
        return delivery


def channel_test(*, channel: Channel, requested_by: str = "") -> Delivery:
    """The page's "Send a test": one attempt now, in the request, so the page shows the result."""
    delivery = Delivery.objects.create(channel=channel, event=Delivery.Event.TEST)
    return delivery_attempt(delivery_id=delivery.id, retry=False)


def channel_create(
    *, name: str, kind: str, target: str, organization=None, secret: str = "", created_by: str = ""
) -> Channel:
    channel = Channel(
        name=name, kind=kind, target=target, organization=organization, created_by=created_by
    )
    if secret:
        channel.secret = secret
    channel.full_clean()
    channel.save()
    return channel


def channel_delete(*, channel: Channel) -> None:
    channel.delete()
