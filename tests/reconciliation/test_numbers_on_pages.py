"""The queue and a discrepancy's page set figures for people (the numbers filter): a real minus,
no six trailing zeros, the unit beside the figure, and moments with a relative hint."""

from __future__ import annotations

import pytest

from tests.page_helpers import open_discrepancies, table_body, text

pytestmark = pytest.mark.django_db


def test_it_shows_the_queues_differences_trimmed_and_signed(as_acme_support, acme):
    [d] = open_discrepancies("acme", 1, prefix="N", by="1250")
    body = table_body(text(as_acme_support.get("/reconciliation/")), "discrepancies")
    assert '<span class="qty neg" data-value="-1250.000000">\u22121,250</span>' in body
    assert "-1250.000000<" not in body
    assert "(just now)" in body


def test_it_shows_a_discrepancys_difference_with_its_unit(as_acme_support, acme):
    [d] = open_discrepancies("acme", 1, prefix="N", by="2.5")
    html = text(as_acme_support.get(f"/reconciliation/{d.id}/"))
    assert f'\u22122.5</span>\u00a0<span class="unit">{d.unit}</span>' in html
