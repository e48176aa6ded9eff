"""Chat channels through Apprise, delivered for real: Apprise's json:// service posts to the
test's HTTP server (the same code path as slack://, msteams://, ... with another URL)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from alerts.models import Delivery
from alerts.services import channel_create, channel_test
from operations.models import JobRun

pytestmark = pytest.mark.django_db


def test_it_delivers_an_alert_through_an_apprise_url(webhook, deliver_now, worker_alive):
    hook = webhook()
    target = hook.url.replace("http://", "json://")
    channel_create(name="chat", kind="apprise", target=target)
    JobRun.objects.create(
        kind="migrate", schema_name="acme", status="interrupted", finished_at=timezone.now()
    )
    deliver_now()
    [sent] = hook.requests
    assert sent["path"] == "/hook"
    assert sent["payload"]["title"] == "[Inventory Enterprise] ALERT: Migrate interrupted for acme"
    assert "The migrate job" in sent["payload"]["message"]
    assert Delivery.objects.get().status == "sent"


def test_it_records_apprises_error_when_the_chat_service_fails(webhook):
    hook = webhook(status=500)
    channel = channel_create(name="chat", kind="apprise", target=hook.url.replace("http", "json"))
    delivery = channel_test(channel=channel)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "500" in delivery.last_error
    assert len(hook.requests) == 1


def test_it_refuses_a_url_apprise_does_not_understand():
    from django.test import Client

    from alerts.models import Channel
    from tests.factories import PASSWORD, make_user

    admin = make_user("alerts-admin", superuser=True)
    client = Client(HTTP_HOST="localhost")
    assert client.login(username=admin.username, password=PASSWORD)
    page = client.post(
        "/alerts/channels/", {"name": "x", "kind": "apprise", "target": "file:///etc"}
    )
    assert page.status_code == 400
    assert b"Not a service URL Apprise understands." in page.content
    assert not Channel.objects.exists()
