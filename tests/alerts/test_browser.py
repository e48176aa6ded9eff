"""In a real browser: a platform admin adds a webhook channel, presses "Send a test" and sees it
delivered; the test's HTTP server received one request, signed with the channel's secret."""

from __future__ import annotations

import pytest

from alerts.models import Alert, Channel, Delivery
from alerts.services import alerts_evaluate
from operations.models import WorkerHeartbeat
from tests.e2e.conftest import e2e, login, shot, wait_until  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e


@pytest.fixture
def channels_cleanup(e2e):  # noqa: F811
    yield
    Channel.objects.all().delete()
    Alert.objects.all().delete()


def test_it_lets_an_admin_add_a_webhook_channel_and_see_its_test_delivered(
    e2e,  # noqa: F811
    login,  # noqa: F811
    webhook,
    channels_cleanup,
):
    hook = webhook("typed-in-the-browser")
    page = login("admin")
    page.get_by_role("link", name="Alerts", exact=True).click()
    page.wait_for_selector("h1:has-text('Alerts')")
    page.get_by_role("link", name="Channels").click()
    page.wait_for_selector("h1:has-text('Alert channels')")
    page.get_by_label("Name").fill("ops webhook")
    page.get_by_label("Kind").select_option("webhook")
    page.get_by_label("Address or URL").fill(hook.url)
    page.get_by_label("Webhook secret").fill("typed-in-the-browser")
    page.get_by_role("button", name="Add channel").click()
    row = page.locator("#channels tr[data-channel='ops webhook']")
    row.wait_for()
    assert hook.requests == []

    row.get_by_role("button", name="Send a test").click()
    row.locator(".test-result[data-status=sent]").wait_for()
    assert "delivered" in row.inner_text()
    shot(page, "alert-channels")
    assert len(hook.requests) == 1
    assert hook.requests[0]["signed"]
    assert hook.requests[0]["payload"]["event"] == "test"
    assert hook.requests[0]["payload"]["channel"] == "ops webhook"
    delivery = Delivery.objects.get(event="test")
    assert (delivery.status, delivery.attempts) == ("sent", 1)

    # The seeded acme discrepancies open an alert; the e2e worker delivers it after the commit,
    # and the alerts page lists it with its delivery.
    wait_until(WorkerHeartbeat.objects.exists, seconds=60)
    [opened] = alerts_evaluate().opened
    assert opened.key.startswith("discrepancies:") and opened.key.endswith(":acme")
    wait_until(lambda: len(hook.requests) == 2, seconds=30)
    assert hook.requests[1]["signed"] and hook.requests[1]["payload"]["key"] == opened.key
    page.goto(f"{e2e['url']}/alerts/")
    alert_row = page.locator(f"#open-alerts tr[data-key='{opened.key}']")
    assert "2 discrepancies in acme" in alert_row.inner_text()
    assert alert_row.locator("li[data-status=sent]").count() == 1
    shot(page, "alerts")

    # A channel that does not answer shows the error, not "delivered".
    page.goto(f"{e2e['url']}/alerts/channels/")
    hook.status = 503
    row.get_by_role("button", name="Send a test").click()
    row.locator(".test-result[data-status=failed]").wait_for()
    assert "HTTP 503" in row.inner_text()
