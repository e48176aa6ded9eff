"""One filter sets quantities and moments for people; the CSV export keeps the stored value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.utils import timezone

from inventory.templatetags.numbers import ago_text, qty_text


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("-1830.000000", "\u22121,830"),
        ("1234567.120000", "1,234,567.12"),
        ("0.000001", "0.000001"),
        ("0.0000004", "0"),  # beyond the six stored places
        ("0", "0"),
        ("-0.500000", "\u22120.5"),
        ("10000000000000000000000.5", "10,000,000,000,000,000,000,000.5"),
    ],
)
def test_it_trims_separates_and_marks_the_sign(stored, shown):
    assert qty_text(Decimal(stored)) == shown


def test_it_puts_the_unit_beside_the_figure_and_keeps_the_exact_value():
    html = Template("{% load numbers %}{{ v|qty:u }}").render(
        Context({"v": Decimal("-2500.250000"), "u": "kg"})
    )
    assert html == (
        '<span class="qty neg" data-value="-2500.250000">\u22122,500.25</span>'
        '\u00a0<span class="unit">kg</span>'
    )


def test_it_escapes_the_unit():
    html = Template("{% load numbers %}{{ v|qty:u }}").render(Context({"v": 1, "u": "<b>"}))
    assert "<b>" not in html and "&lt;b&gt;" in html


def test_it_shows_moments_in_the_active_time_zone_with_a_relative_hint():
    moment = timezone.now() - timedelta(hours=3, minutes=5)
    with timezone.override("Asia/Kolkata"):
        html = Template("{% load numbers %}{{ t|when }}").render(Context({"t": moment}))
    local = moment.astimezone(timezone.get_fixed_timezone(330))
    assert local.strftime("%Y-%m-%d %H:%M") in html
    assert "(3 h ago)" in html and f'datetime="{moment.isoformat()}"' in html


def test_it_says_ago_in_steps():
    now = datetime(2026, 1, 10, tzinfo=UTC)
    assert ago_text(now - timedelta(seconds=5), now) == "just now"
    assert ago_text(now - timedelta(minutes=7), now) == "7 min ago"
    assert ago_text(now - timedelta(days=2, hours=1), now) == "2 d ago"
    assert ago_text(now - timedelta(days=90), now) == ""
