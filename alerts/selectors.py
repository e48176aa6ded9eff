"""Reads for the pages: alerts with their deliveries, channels, scoped to who asks."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from alerts.models import Alert, Channel, Delivery

RECENT = 50


def alerts_list(*, organization=None) -> tuple[list[Alert], list[Alert]]:
    """Open alerts and the most recent resolved ones, each with its deliveries. With an
    organisation: only its alerts, and only deliveries to its own channels (an owner never sees
    the platform's addresses)."""
    deliveries = Delivery.objects.select_related("channel")
    alerts = Alert.objects.select_related("organization")
    if organization is not None:
        alerts = alerts.filter(organization=organization)
        deliveries = deliveries.filter(channel__organization=organization)
    alerts = alerts.prefetch_related(Prefetch("deliveries", queryset=deliveries.order_by("id")))
    open_ = list(alerts.filter(state=Alert.State.OPEN).order_by("-opened_at", "-id"))
    resolved = list(alerts.filter(state=Alert.State.RESOLVED).order_by("-resolved_at")[:RECENT])
    return open_, resolved


def channels_list(*, organization=None, platform: bool = False) -> QuerySet[Channel]:
    channels = Channel.objects.select_related("organization").order_by("name", "id")
    if platform:
        return channels.filter(organization=None)
    return channels.filter(organization=organization)


def channels_with_last_test(*, organization=None, platform: bool = False) -> list[tuple]:
    """(channel, its newest test delivery or None), in two queries however many channels."""
    channels = list(channels_list(organization=organization, platform=platform))
    tests = {
        d.channel_id: d
        for d in Delivery.objects.filter(channel__in=channels, event=Delivery.Event.TEST)
        .order_by("channel_id", "-id")
        .distinct("channel_id")
    }
    return [(c, tests.get(c.id)) for c in channels]
