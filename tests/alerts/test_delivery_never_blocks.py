"""Delivery never blocks the work, for real: a `manage.py qcluster` worker sends the alert to a
webhook that takes 2 s to answer 500; the evaluation that raised it returns at once, the next
reconciliation takes as long as the one before, and the worker retries with a backoff, every
attempt recorded. Data is committed (`committed`) so the worker sees it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from alerts.models import Alert, Delivery, DeliveryAttempt
from alerts.services import alerts_evaluate, channel_create
from operations.models import WorkerHeartbeat
from tests.alerts.helpers import skew_and_reconcile
from tests.e2e.conftest import wait_until
from tests.server_processes import live_database_url, stop_group

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker(committed, tmp_path):
    log = tmp_path / "qcluster.log"
    env = {
        **os.environ,
        "DATABASE_URL": live_database_url(),
        "DEBUG": "true",
        "Q_WORKERS": "1",
        "ALERT_RETRY_BASE_SECONDS": "1",
        "ALERT_MAX_ATTEMPTS": "3",
    }
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: WorkerHeartbeat.objects.exists(), seconds=60)
        yield proc
    finally:
        stop_group(proc)
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE alerts_delivery_attempts, alerts_deliveries, alerts_alerts, "
                "alerts_channels, django_q_ormq, django_q_task, operations_worker_heartbeats"
            )


def test_it_retries_a_channel_answering_500_in_the_worker_while_reconciliation_keeps_its_pace(
    worker, webhook
):
    hook = webhook("down-secret", status=500, delay=2)
    baseline = skew_and_reconcile("acme", keys=3)
    channel_create(name="down", kind="webhook", target=hook.url, secret="down-secret")

    t0 = time.monotonic()
    result = alerts_evaluate()  # commits; the delivery is queued for the worker on commit
    evaluation_seconds = time.monotonic() - t0
    assert [a.key for a in result.opened] == [f"discrepancies:{baseline.id}:acme"]
    assert evaluation_seconds < 1.0, evaluation_seconds  # the 2 s answer is not waited for

    # While the worker waits on the channel, the next reconciliation runs at its usual pace.
    wait_until(lambda: len(hook.requests) == 1, seconds=30)
    t1 = time.monotonic()
    again = skew_and_reconcile("globex", keys=3)
    during = time.monotonic() - t1
    assert again.status == "succeeded" and again.opened == 3
    assert during < 1.5, during
    assert again.seconds <= baseline.seconds + 0.5, (baseline.seconds, again.seconds)

    delivery = Delivery.objects.get(alert__key=f"discrepancies:{baseline.id}:acme")
    wait_until(lambda: DeliveryAttempt.objects.filter(delivery=delivery).count() == 1, seconds=30)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        "retrying",
        1,
        "HTTP 500 Internal Server Error",
    )

    def retried_out() -> bool:
        alerts_evaluate()  # the minute's evaluation queues the retries that are due
        return Delivery.objects.get(id=delivery.id).status == "failed"

    wait_until(retried_out, seconds=60)
    attempts = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [(a.number, a.ok, a.error) for a in attempts] == [
        (n, False, "HTTP 500 Internal Server Error") for n in (1, 2, 3)
    ]
    assert all(a.seconds >= 2 for a in attempts)  # each waited on the channel, in the worker
    target = [r for r in hook.requests if r["payload"]["key"].endswith(":acme")]
    assert len(target) == 3 and all(r["signed"] for r in target)
    gaps = [b["at"] - a["at"] for a, b in zip(target, target[1:], strict=False)]
    # Each retry waits the 2 s answer plus a doubling backoff (1 s, then 2 s).
    assert gaps[0] >= 2 + 1 and gaps[1] >= 2 + 2, gaps
    assert Alert.objects.get(key=f"discrepancies:{baseline.id}:acme").state == "open"
