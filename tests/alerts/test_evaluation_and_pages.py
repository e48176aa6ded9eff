"""The evaluator's guarantees (one open alert per key, even under concurrent evaluations), the
command, the channel forms, the admin, and a constant number of queries on the alerts page."""

from __future__ import annotations

import threading

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.models import Alert, Channel, Delivery
from alerts.services import alerts_evaluate, channel_create
from operations.models import JobRun, WorkerHeartbeat
from reconciliation.models import ReconciliationRun
from tests.factories import PASSWORD, make_user


def _client(user) -> Client:
    client = Client(HTTP_HOST="localhost")
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def alerts_committed(committed):
    yield committed
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE alerts_delivery_attempts, alerts_deliveries, alerts_alerts, alerts_channels, "
            "django_q_ormq, operations_worker_heartbeats"
        )


def test_it_opens_one_alert_when_four_evaluations_run_at_once(alerts_committed):
    WorkerHeartbeat.objects.create(cluster="inventory", beat_at=timezone.now())
    Channel.objects.create(name="ops", kind="webhook", target="http://127.0.0.1:9/", secret="s")
    JobRun.objects.create(
        kind="backfill",
        schema_name="acme",
        status="failed",
        error="disk full",
        finished_at=timezone.now(),
    )
    barrier, results, errors = threading.Barrier(4), [], []

    def evaluate():
        try:
            barrier.wait()
            results.append(alerts_evaluate())
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(len(r.opened) for r in results) == [0, 0, 0, 1]
    assert list(Alert.objects.values_list("key", "state")) == [("job:backfill:acme", "open")]
    assert Delivery.objects.count() == 1  # queued once, for the worker


@pytest.mark.django_db
def test_it_alerts_on_a_failed_scheduled_reconciliation(acme, webhook, deliver_now, worker_alive):
    hook = webhook("r")
    channel_create(name="ops", kind="webhook", target=hook.url, secret="r")
    ReconciliationRun.objects.create(
        organization=acme,
        mode="incremental",
        status="failed",
        started_at=timezone.now(),
        finished_at=timezone.now(),
        tolerance="0.01",
        error="canceling statement due to timeout",
    )
    deliver_now()
    [sent] = hook.requests
    assert sent["payload"]["key"] == "reconciliation:acme"
    assert "canceling statement due to timeout" in sent["payload"]["summary"]


@pytest.mark.django_db
def test_it_evaluates_and_sends_from_the_command(webhook, worker_alive, capsys, monkeypatch):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", Conf.SYNC)  # the command's --send sets it; undo after
    hook = webhook("c")
    channel_create(name="ops", kind="webhook", target=hook.url, secret="c")
    WorkerHeartbeat.objects.all().delete()
    call_command("evaluate_alerts", "--send")
    out = capsys.readouterr().out
    assert "opened   worker:heartbeat" in out and "1 opened, 0 resolved" in out
    # The test's transaction never commits: the command queued its delivery on commit.
    assert Delivery.objects.get().status == "pending"


@pytest.mark.django_db
def test_it_lets_an_owner_add_only_valid_channels_to_their_own_organisation(
    acme, acme_owner, globex_owner
):
    client = _client(acme_owner)
    bad = client.post(
        "/orgs/acme/alerts/channels/",
        {"name": "x", "kind": "webhook", "target": "file:///etc/passwd"},
    )
    assert bad.status_code == 400 and b"Give an http:// or https:// URL." in bad.content
    bad = client.post(
        "/orgs/acme/alerts/channels/", {"name": "x", "kind": "email", "target": "not-an-address"}
    )
    assert bad.status_code == 400 and b"Not an email address: not-an-address" in bad.content
    assert not Channel.objects.exists()
    ok = client.post(
        "/orgs/acme/alerts/channels/",
        {"name": "stock team", "kind": "email", "target": "a@acme.test ,b@acme.test"},
    )
    assert ok.status_code == 302
    channel = Channel.objects.get()
    assert (channel.organization, channel.target, channel.created_by) == (
        acme,
        "a@acme.test, b@acme.test",
        "acme-owner",
    )
    # An owner cannot add to, nor see, the platform's channels or another organisation's.
    other = _client(globex_owner)
    assert (
        other.post(
            "/orgs/acme/alerts/channels/", {"name": "y", "kind": "email", "target": "y@x.test"}
        ).status_code
        == 404
    )
    assert other.get("/alerts/channels/").status_code == 403
    assert Channel.objects.count() == 1


@pytest.mark.django_db
def test_it_renders_the_alerts_page_in_the_same_number_of_queries_for_more_alerts(acme, settings):
    admin = make_user("alerts-admin", superuser=True)
    channel = channel_create(name="ops", kind="webhook", target="http://127.0.0.1:9/", secret="q")
    client = _client(admin)

    def add(n):
        for i in range(n):
            alert = Alert.objects.create(
                key=f"job:backfill:s{Alert.objects.count()}-{i}",
                title="t",
                summary="s",
                since=timezone.now(),
                opened_at=timezone.now(),
                organization=acme,
            )
            Delivery.objects.create(alert=alert, channel=channel, event="opened")

    add(2)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/alerts/").status_code == 200
    add(10)
    with CaptureQueriesContext(connection) as many:
        page = client.get("/alerts/")
    assert page.content.count(b"<tr data-key=") == 12
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


@pytest.mark.django_db
def test_it_shows_channels_alerts_and_deliveries_in_the_django_admin(acme):
    admin = make_user("alerts-admin", superuser=True)
    channel_create(name="ops", kind="email", target="ops@example.test")
    client = _client(admin)
    for path in (
        "/admin/alerts/channel/",
        "/admin/alerts/alert/",
        "/admin/alerts/delivery/",
        "/admin/alerts/channel/add/",
    ):
        assert client.get(path).status_code == 200, path
    assert client.get("/admin/alerts/alert/add/").status_code == 403
    refused = client.post(
        "/admin/alerts/channel/add/",
        {"name": "x", "kind": "webhook", "target": "file:///etc/passwd", "secret": "s"},
    )
    assert refused.status_code == 200 and b"Give an http:// or https:// URL." in refused.content
    assert Channel.objects.count() == 1
    added = client.post(
        "/admin/alerts/channel/add/",
        {
            "name": "hook",
            "kind": "webhook",
            "target": "https://hooks.example.test/a",
            "secret": "s",
            "is_active": "on",
        },
    )
    assert added.status_code == 302
    assert Channel.objects.get(name="hook").created_by == "alerts-admin"


@pytest.mark.django_db
def test_it_renders_the_channels_page_in_the_same_number_of_queries_for_more_channels(acme):
    from alerts.services import channel_test

    admin = make_user("alerts-admin", superuser=True)
    client = _client(admin)

    def add(n):
        for i in range(n):
            c = channel_create(
                name=f"c{Channel.objects.count()}-{i}",
                kind="webhook",
                target="http://127.0.0.1:9/",
                secret="q",
            )
            channel_test(channel=c)  # refused: nobody listens on port 9

    add(2)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/alerts/channels/").status_code == 200
    add(5)
    with CaptureQueriesContext(connection) as many:
        page = client.get("/alerts/channels/")
    assert page.content.count(b'data-status="failed"') == 7
    assert len(many) == len(few)
