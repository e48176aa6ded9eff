"""Odd input from the address bar or a form is answered (a message, a 4xx, an empty result),
never with a server error."""

from __future__ import annotations

import re

import pytest
from django_tenants.utils import schema_context

from tests.page_helpers import stock_keys, text

pytestmark = pytest.mark.django_db


NUL_REFUSED = b"NUL characters are not allowed in parameters, form fields or bodies."


@pytest.mark.parametrize("path", ["/orgs/acme/balances/", "/orgs/acme/balances.csv"])
@pytest.mark.parametrize("param", ["q", "location", "lot"])
def test_the_balances_page_refuses_a_nul_byte_in_a_filter(path, param, as_acme_owner, acme):
    stock_keys("acme", 1, prefix="N")
    response = as_acme_owner.get(f"{path}?{param}=a%00b")
    assert response.status_code == 400 and response.content == NUL_REFUSED
    assert "Content-Disposition" not in response


def field_error(response, field_id: str) -> str:
    match = re.search(
        rf'<p class="error" role="alert" id="{field_id}-error">([^<]*)</p>', text(response)
    )
    assert match, f"no error shown for {field_id}"
    return match[1]


def tenant_counts(schema: str) -> tuple[int, int]:
    from inventory.models import Balance, LedgerEntry

    with schema_context(schema):
        return Balance.objects.count(), LedgerEntry.objects.count()


HUGE = "9" * 5000  # past Python's int() digit limit (4300): int() itself raises


BAD_BALANCE_FILTERS = [
    ("q", "x" * 101, "Item (SKU or name): Ensure this value has at most 100 characters"),
    ("location", "L" * 65, "Location: Ensure this value has at most 64 characters"),
    ("lot", "x" * 65, "Lot: Ensure this value has at most 64 characters"),
    ("sign", "NaN", "Balance: Select a valid choice."),
    ("sort", "qty;DROP", "Sort: Select a valid choice."),
    ("page", "-1", "Page: Ensure this value is greater than or equal to 1."),
    ("page", "0", "Page: Ensure this value is greater than or equal to 1."),
    ("page", "1000001", "Page: Ensure this value is less than or equal to 1000000."),
    ("page", "9" * 30, "Page: Ensure this value is less than or equal to 1000000."),
    ("page", HUGE, "Page: Enter a whole number."),
    ("page", "NaN", "Page: Enter a whole number."),
    ("page", "Infinity", "Page: Enter a whole number."),
    ("page", "1e3", "Page: Enter a whole number."),
    ("page", "2.0", "Page: Enter a whole number."),
    ("page", "1_0", "Page: Enter a whole number."),  # int() reads it as 10
    ("page", "%C2%B2", "Page: Enter a whole number."),  # '²': isdigit() but not int()
    ("page", "%D9%A1", "Page: Enter a whole number."),  # Arabic-Indic one: int() reads it
    ("page", "%EF%BC%91", "Page: Enter a whole number."),  # full-width one: int() reads it
]


@pytest.mark.parametrize(("param", "value", "message"), BAD_BALANCE_FILTERS)
def test_the_balances_page_refuses_an_unbounded_filter(param, value, message, as_acme_owner, acme):
    stock_keys("acme", 2, prefix="N")
    before = tenant_counts("acme")
    response = as_acme_owner.get(f"/orgs/acme/balances/?{param}={value}")
    assert response.status_code == 400
    assert field_error(response, f"f-{param}").startswith(message)
    # The refused filter is ignored: every row is shown, and nothing was written.
    assert 'id="result-count">2 balance rows' in text(response)
    assert tenant_counts("acme") == before


@pytest.mark.parametrize(("param", "value", "message"), BAD_BALANCE_FILTERS)
def test_the_balances_csv_refuses_an_unbounded_filter(param, value, message, as_acme_owner, acme):
    stock_keys("acme", 2, prefix="N")
    before = tenant_counts("acme")
    response = as_acme_owner.get(f"/orgs/acme/balances.csv?{param}={value}")
    assert response.status_code == 400
    assert "Content-Disposition" not in response
    assert response.content.decode().startswith(message)
    assert tenant_counts("acme") == before


BAD_HISTORY = [
    ("before", "%C2%B2", "Older than: Enter a whole number."),  # '²': once a 500
    ("before", "%D9%A1%D9%A2", "Older than: Enter a whole number."),  # Arabic-Indic 12
    ("before", "x", "Older than: Enter a whole number."),
    ("before", "NaN", "Older than: Enter a whole number."),
    ("before", HUGE, "Older than: Enter a whole number."),
    ("before", "-1", "Older than: Ensure this value is greater than or equal to 1."),
    ("before", str(2**63), "Older than: Ensure this value is less than or equal to"),
    ("limit", "0", "Rows: Ensure this value is greater than or equal to 1."),
    ("limit", "-5", "Rows: Ensure this value is greater than or equal to 1."),
    ("limit", "201", "Rows: Ensure this value is less than or equal to 200."),
    ("limit", "9" * 30, "Rows: Ensure this value is less than or equal to 200."),
    ("limit", "NaN", "Rows: Enter a whole number."),
    ("limit", "%EF%BC%95", "Rows: Enter a whole number."),  # full-width 5
]


@pytest.mark.parametrize(("param", "value", "message"), BAD_HISTORY)
def test_the_item_page_refuses_an_unbounded_history_filter(
    param, value, message, as_acme_owner, acme
):
    from inventory.models import Item

    stock_keys("acme", 1, prefix="N")
    with schema_context("acme"):
        item = Item.objects.get(sku="N-0000")
    before = tenant_counts("acme")
    response = as_acme_owner.get(f"/orgs/acme/items/{item.id}/?{param}={value}")
    assert response.status_code == 400
    assert field_error(response, f"h-{param}").startswith(message)
    # The history starts at the newest row instead.
    assert text(response).count("<td>receipt</td>") == 1
    assert tenant_counts("acme") == before
