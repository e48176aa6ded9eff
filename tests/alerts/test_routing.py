"""Routing and isolation: the platform's channels hear everything, an organisation's channels
only its own discrepancies, and an owner of globex never receives or sees an acme alert."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from alerts.models import Alert, Channel, Delivery
from alerts.services import channel_create
from operations.models import JobRun
from tests.alerts.helpers import skew_and_reconcile
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client(HTTP_HOST="localhost")
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_it_sends_acme_discrepancies_to_the_platform_and_acme_never_to_globex(
    acme, globex, acme_owner, globex_owner, webhook, deliver_now, worker_alive, settings
):
    settings.SITE_URL = "https://ops.example.test"
    settings.ALERT_ALLOW_PRIVATE_TARGETS = True  # the test's receivers listen on 127.0.0.1
    platform, acme_hook, globex_hook = webhook("p-secret"), webhook("a-secret"), webhook("g-secret")
    channel_create(name="ops", kind="webhook", target=platform.url, secret="p-secret")
    channel_create(
        name="acme hook", kind="webhook", target=acme_hook.url, secret="a-secret", organization=acme
    )
    channel_create(
        name="globex hook",
        kind="webhook",
        target=globex_hook.url,
        secret="g-secret",
        organization=globex,
    )
    run = skew_and_reconcile("acme", by="7", keys=3)
    result = deliver_now()
    assert [a.key for a in result.opened] == [f"discrepancies:{run.id}:acme"]
    assert len(platform.requests) == len(acme_hook.requests) == 1
    assert globex_hook.requests == []
    sent = acme_hook.requests[0]
    assert sent["signed"]
    payload = sent["payload"]
    assert (payload["event"], payload["organization"]) == ("opened", "acme")
    assert "found 3 open discrepancies" in payload["summary"]
    assert "largest difference is 21" in payload["summary"]  # 7, 14, 21
    assert payload["link"] == (
        f"https://ops.example.test/reconciliation/?org=acme&status=open&run={run.id}&min=0.01"
    )
    # A second run that sees the same discrepancies opens nothing: one message per run found them.
    deliver_now()
    assert len(acme_hook.requests) == 1

    # The pages: globex's owner sees none of it, and cannot reach acme's.
    globex_client = _client(globex_owner)
    page = globex_client.get("/orgs/globex/alerts/")
    assert page.status_code == 200
    assert b"discrepancies:" not in page.content and b"acme" not in page.content.lower()
    assert globex_client.get("/orgs/acme/alerts/").status_code == 404
    assert globex_client.get("/orgs/acme/alerts/channels/").status_code == 404
    assert globex_client.get("/alerts/").status_code == 403
    acme_channel = Channel.objects.get(name="acme hook")
    assert (
        globex_client.post(f"/orgs/globex/alerts/channels/{acme_channel.id}/test/").status_code
        == 404
    )
    assert (
        globex_client.post(f"/orgs/globex/alerts/channels/{acme_channel.id}/delete/").status_code
        == 404
    )
    assert Channel.objects.filter(id=acme_channel.id).exists()
    assert len(acme_hook.requests) == 1  # the refused test sent nothing
    channels_page = globex_client.get("/orgs/globex/alerts/channels/")
    assert b"globex hook" in channels_page.content and b"acme hook" not in channels_page.content

    # acme's owner sees the alert and the delivery to acme's own channel, not the platform's.
    acme_page = _client(acme_owner).get("/orgs/acme/alerts/")
    assert acme_page.status_code == 200
    assert f"discrepancies:{run.id}:acme".encode() in acme_page.content
    assert b"acme hook" in acme_page.content
    assert "→ ops:".encode() not in acme_page.content
    assert platform.url.encode() not in acme_page.content


def test_it_keeps_platform_events_off_organisation_channels(
    acme, webhook, deliver_now, worker_alive, settings
):
    settings.ALERT_ALLOW_PRIVATE_TARGETS = True
    platform, acme_hook = webhook("p"), webhook("a")
    channel_create(name="ops", kind="webhook", target=platform.url, secret="p")
    channel_create(
        name="acme hook", kind="webhook", target=acme_hook.url, secret="a", organization=acme
    )
    JobRun.objects.create(
        kind="reconcile",
        schema_name="acme",
        status="failed",
        error="could not serialize access",
        finished_at=timezone.now(),
    )
    deliver_now()
    assert [r["payload"]["key"] for r in platform.requests] == ["job:reconcile:acme"]
    assert "could not serialize access" in platform.requests[0]["payload"]["summary"]
    assert acme_hook.requests == []
    # The next run succeeds: resolved, one message.
    JobRun.objects.create(
        kind="reconcile", schema_name="acme", status="succeeded", finished_at=timezone.now()
    )
    deliver_now()
    assert [r["payload"]["event"] for r in platform.requests] == ["opened", "resolved"]


def test_it_opens_validation_and_worker_alerts_from_their_facts(acme, webhook, deliver_now):
    hook = webhook("v")
    channel_create(name="ops", kind="webhook", target=hook.url, secret="v")
    JobRun.objects.create(
        kind="validate",
        schema_name="acme",
        status="succeeded",
        finished_at=timezone.now(),
        result={"ok": False, "checks": [{"name": "Trigger enabled", "ok": False, "detail": ""}]},
    )
    result = deliver_now()  # and no heartbeat was ever recorded
    assert sorted(a.key for a in result.opened) == ["validation:acme", "worker:heartbeat"]
    assert "Trigger enabled" in Alert.objects.get(key="validation:acme").summary
    assert all(r["signed"] for r in hook.requests) and len(hook.requests) == 2


def test_it_shows_platform_admins_every_alert_with_its_deliveries(
    acme, webhook, deliver_now, worker_alive
):
    hook = webhook("x", status=500)
    channel_create(name="ops", kind="webhook", target=hook.url, secret="x")
    run = skew_and_reconcile("acme")
    deliver_now()
    admin = make_user("alerts-admin", superuser=True)
    owner = make_user("plain-user")
    page = _client(admin).get("/alerts/")
    assert page.status_code == 200
    assert f"discrepancies:{run.id}:acme".encode() in page.content
    assert b"HTTP 500" in page.content and b"retrying" in page.content
    assert _client(owner).get("/alerts/").status_code == 403
    assert Client(HTTP_HOST="localhost").get("/alerts/").status_code == 302
    assert Delivery.objects.get().attempts == 1


def test_it_refuses_organisation_webhooks_to_private_addresses_when_added_and_when_sent(
    acme, acme_owner, webhook, deliver_now, worker_alive
):
    hook = webhook("a")
    client = _client(acme_owner)
    for target in (hook.url, "http://10.0.0.5/hook", "http://169.254.169.254/latest/meta-data/"):
        page = client.post(
            "/orgs/acme/alerts/channels/", {"name": "x", "kind": "webhook", "target": target}
        )
        assert page.status_code == 400 and b"is a private or local address" in page.content
    page = client.post(
        "/orgs/acme/alerts/channels/",
        {"name": "x", "kind": "apprise", "target": hook.url.replace("http", "json")},
    )
    assert (
        page.status_code == 400 and b"Chat channels are set up by platform admins" in page.content
    )
    assert not Channel.objects.exists()
    # One stored before (or pointed there by DNS since) is refused at each send.
    channel_create(name="old", kind="webhook", target=hook.url, secret="a", organization=acme)
    skew_and_reconcile("acme")
    deliver_now()
    delivery = Delivery.objects.get()
    assert delivery.status == "retrying" and "is a private or local address" in delivery.last_error
    assert hook.requests == []
