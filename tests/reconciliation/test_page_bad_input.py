"""Odd input from the address bar or a form is answered (a message, a 4xx, an empty result),
never with a server error."""

from __future__ import annotations

import pytest

from reconciliation.models import Discrepancy
from tests.page_helpers import messages_of, open_discrepancies, text

pytestmark = pytest.mark.django_db


NUL_REFUSED = b"NUL characters are not allowed in parameters, form fields or bodies."


@pytest.mark.parametrize("value", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_the_queue_reports_a_size_it_cannot_filter_by(value, as_admin, acme):
    """Decimal() accepts these, but they are no size: the page must say so with a 400, as it does
    for "abc" (once the queryset failed with a ValidationError when it was evaluated: a 500)."""
    open_discrepancies("acme", 1, prefix="N")
    response = as_admin.get(f"/reconciliation/?min={value}")
    assert response.status_code == 400
    assert 'class="error" role="alert"' in text(response)


def test_the_queue_refuses_a_nul_byte_in_the_organisation_filter(as_admin, acme):
    # config.middleware answers before any view: PostgreSQL text cannot hold NUL.
    open_discrepancies("acme", 1, prefix="N")
    response = as_admin.get("/reconciliation/?org=%00")
    assert response.status_code == 400 and response.content == NUL_REFUSED


def test_bulk_approve_ignores_non_ascii_digit_ids(as_admin, acme):
    [d] = open_discrepancies("acme", 1, prefix="N")
    response = as_admin.post("/reconciliation/approve/", {"ids": ["²"]}, follow=True)
    assert response.status_code == 200
    assert "Select at least one discrepancy to approve." in messages_of(response)
    assert Discrepancy.objects.get(pk=d.pk).status == "open"


@pytest.mark.parametrize("action", ["approve", "dismiss"])
def test_a_resolution_note_with_a_nul_byte_is_answered(action, as_admin, acme):
    [d] = open_discrepancies("acme", 1, prefix="N")
    response = as_admin.post(f"/reconciliation/{d.id}/{action}/", {"note": "ok\x00"})
    assert response.status_code == 400
    assert b"NUL characters are not allowed" in response.content
    d.refresh_from_db()
    assert d.status == "open" and "\x00" not in d.note
