"""Odd input from the address bar or a form is answered (a message, a 4xx, an empty result),
never with a server error."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from reconciliation.models import Discrepancy
from tenants.models import ApiKey
from tests.pages.helpers import messages_of, open_discrepancies, stock_keys, text

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_the_queue_reports_a_size_it_cannot_filter_by(value, as_admin, acme):
    """Decimal() accepts these, but they are no size: the page must say so with a 400, as it does
    for "abc" (once the queryset failed with a ValidationError when it was evaluated: a 500)."""
    open_discrepancies("acme", 1, prefix="N")
    response = as_admin.get(f"/reconciliation/?min={value}")
    assert response.status_code == 400
    assert 'class="error" role="alert"' in text(response)


def test_the_queue_survives_a_nul_byte_in_the_organisation_filter(as_admin, acme):
    open_discrepancies("acme", 1, prefix="N")
    response = as_admin.get("/reconciliation/?org=%00")
    assert response.status_code in (200, 400)


@pytest.mark.parametrize("param", ["q", "location", "lot"])
def test_the_balances_page_survives_a_nul_byte_in_a_filter(param, as_acme_owner, acme):
    stock_keys("acme", 1, prefix="N")
    response = as_acme_owner.get(f"/orgs/acme/balances/?{param}=a%00b")
    assert response.status_code in (200, 400)


def test_the_item_page_ignores_a_non_ascii_digit_cursor(as_acme_owner, acme):
    """'²'.isdigit() is True but int('²') fails: today a 500."""
    from inventory.models import Item

    stock_keys("acme", 1, prefix="N")
    with schema_context("acme"):
        item = Item.objects.get(sku="N-0000")
    response = as_acme_owner.get(f"/orgs/acme/items/{item.id}/?before=%C2%B2")
    assert response.status_code == 200


def test_bulk_approve_ignores_non_ascii_digit_ids(as_admin, acme):
    [d] = open_discrepancies("acme", 1, prefix="N")
    response = as_admin.post("/reconciliation/approve/", {"ids": ["²"]}, follow=True)
    assert response.status_code == 200
    assert "Select at least one discrepancy to approve." in messages_of(response)
    assert Discrepancy.objects.get(pk=d.pk).status == "open"


def test_an_api_key_label_with_a_nul_byte_is_refused(as_acme_owner, acme):
    response = as_acme_owner.post("/orgs/acme/api-keys/", {"label": "scanner\x00"})
    assert response.status_code == 400
    assert ApiKey.objects.count() == 0


@pytest.mark.parametrize("action", ["approve", "dismiss"])
def test_a_resolution_note_with_a_nul_byte_is_answered(action, as_admin, acme):
    [d] = open_discrepancies("acme", 1, prefix="N")
    response = as_admin.post(f"/reconciliation/{d.id}/{action}/", {"note": "ok\x00"})
    assert response.status_code == 400
    assert b"NUL characters are not allowed" in response.content
    d.refresh_from_db()
    assert d.status == "open" and "\x00" not in d.note


def test_an_unknown_job_kind_is_not_reflected_as_html(as_admin, acme):
    """The 400 for an unknown runbook job echoes the kind from the URL into a text/html body."""
    response = as_admin.post("/orgs/acme/runbook/jobs/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E/")
    assert response.status_code == 400
    assert b"<img" not in response.content
