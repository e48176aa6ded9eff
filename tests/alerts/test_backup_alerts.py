"""One message when a backup fails, none while the monitor keeps failing, one when it recovers:
delivered by email to a real SMTP server the test starts."""

from __future__ import annotations

import pytest

from alerts.models import Alert, Delivery, DeliveryAttempt
from alerts.services import channel_create
from operations.backups import backup_create, backups_monitor

pytestmark = pytest.mark.django_db


def test_it_sends_one_email_when_a_backup_fails_none_while_it_stays_failed_and_one_when_resolved(
    smtp, deliver_now, worker_alive, settings, tmp_path, monkeypatch
):
    settings.BACKUP_DIR = tmp_path
    settings.SITE_URL = "https://ops.example.test"
    channel_create(name="ops mail", kind="email", target="ops@example.test, oncall@example.test")

    monkeypatch.setenv("PG_BIN_DIR", "/nonexistent")  # pg_dump cannot start: the backup fails
    with pytest.raises(FileNotFoundError):
        backup_create()
    result = deliver_now()
    assert [a.key for a in result.opened] == ["backup:failed"]
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail["subject"] == "[Inventory Enterprise] ALERT: Backup failed"
    assert sorted(mail["to"]) == ["oncall@example.test", "ops@example.test"]
    assert mail["from"] == settings.ALERT_FROM_EMAIL
    assert "/nonexistent/pg_dump" in mail["body"]  # what failed
    assert "Failing since" in mail["body"]  # since when
    assert "Where to look: https://ops.example.test/backups/" in mail["body"]  # where to click

    for _ in range(5):  # the monitor fails every time (no good backup), and so does evaluation
        assert not backups_monitor().ok
        result = deliver_now()
        assert (result.opened, result.resolved, result.still_open) == ([], [], 1)
    assert len(smtp.messages) == 1
    # The monitor's failure is the same fault: inhibited while backup:failed is open.
    assert list(Alert.objects.values_list("key", "state")) == [("backup:failed", "open")]

    monkeypatch.delenv("PG_BIN_DIR")
    assert backup_create().status == "ok"
    result = deliver_now()
    assert [a.key for a in result.resolved] == ["backup:failed"] and not result.opened
    assert len(smtp.messages) == 2
    assert smtp.messages[1]["subject"] == "[Inventory Enterprise] RESOLVED: Backup failed"
    # The monitor's old verdict predates the good backup: it waits for the next check.
    assert backups_monitor().ok
    deliver_now()
    assert len(smtp.messages) == 2
    assert list(Alert.objects.values_list("key", "state")) == [("backup:failed", "resolved")]
    assert list(Delivery.objects.values_list("event", "status", "attempts")) == [
        ("resolved", "sent", 1),
        ("opened", "sent", 1),
    ]
    assert DeliveryAttempt.objects.filter(ok=True).count() == 2


def test_it_opens_the_monitor_alert_when_only_the_monitor_fails(
    smtp, deliver_now, worker_alive, settings, tmp_path
):
    settings.BACKUP_DIR = tmp_path
    channel_create(name="ops mail", kind="email", target="ops@example.test")
    record = backup_create()
    (tmp_path / record.file_name).unlink()  # the archive went missing
    assert not backups_monitor().ok
    result = deliver_now()
    assert [a.key for a in result.opened] == ["backup_monitor"]
    assert smtp.subjects == ["[Inventory Enterprise] ALERT: Backup monitor failing"]
    assert "is missing" in smtp.messages[0]["body"]
    deliver_now()
    assert len(smtp.messages) == 1


def test_it_records_an_smtp_server_that_is_down_as_a_failed_attempt_with_a_retry(
    deliver_now, worker_alive, settings, tmp_path, monkeypatch
):
    from tests.server_processes import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody listens
    settings.BACKUP_DIR = tmp_path
    channel_create(name="ops mail", kind="email", target="ops@example.test")
    monkeypatch.setenv("PG_BIN_DIR", "/nonexistent")
    with pytest.raises(FileNotFoundError):
        backup_create()
    deliver_now()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("retrying", 1)
    assert "Connection refused" in delivery.last_error
    assert delivery.next_attempt_at is not None
    assert Alert.objects.get().state == "open"  # the alert is not lost with the channel
