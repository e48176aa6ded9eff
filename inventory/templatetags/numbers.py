"""Numbers and dates set for people: one place decides how a quantity or a moment reads on every
page (`{% load numbers %}`). Exports (CSV, API) keep the exact stored value: these filters are for
eyes only."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation, localcontext

from django import template
from django.utils import timezone
from django.utils.html import format_html

register = template.Library()

# U+2212: a real minus sign, as wide as the plus, so negative columns line up and read as such.
MINUS = "\u2212"


def qty_text(value) -> str:
    """'-1830.500000' -> '−1,830.5': at most the six stored places, no trailing zeros, thousands
    separated. The exact digits, never a float round trip."""
    if value is None or value == "":
        return ""
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    with localcontext(prec=60):
        d = d.quantize(Decimal("0.000001"))
    sign = MINUS if d < 0 else ""
    whole, _, frac = f"{abs(d):f}".partition(".")
    frac = frac.rstrip("0")
    return f"{sign}{int(whole):,}" + (f".{frac}" if frac else "")


@register.filter
def qty(value, unit: str = ""):
    """A quantity for a table cell: the figure, its unit beside it, and `neg`/`zero` classes so a
    negative is marked the same way everywhere. `data-value` carries the exact stored value."""
    if value is None or value == "":
        return "—"
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return value
    css = "qty neg" if d < 0 else "qty zero" if d == 0 else "qty"
    if unit:
        return format_html(
            '<span class="{}" data-value="{}">{}</span>\u00a0<span class="unit">{}</span>',
            css,
            value,
            qty_text(d),
            unit,
        )
    return format_html('<span class="{}" data-value="{}">{}</span>', css, value, qty_text(d))


@register.filter
def qty_plain(value) -> str:
    """The figure alone, no markup: for SVG text and titles (an HTML <span> inside <svg> ends the
    SVG for the browser's parser)."""
    return qty_text(value)


def ago_text(value: datetime, now: datetime | None = None) -> str:
    """'just now', '5 min ago', '3 h ago', '2 d ago', then nothing (the date says it)."""
    now = now or timezone.now()
    seconds = int((now - value).total_seconds())
    if seconds < 0:
        return "in the future"
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    if seconds < 86400 * 30:
        return f"{seconds // 86400} d ago"
    return ""


@register.filter
def when(value):
    """A moment in the user's time zone (Django's active one: settings.TIME_ZONE unless a
    middleware activated the user's), with a relative hint and the exact UTC instant in
    `datetime` for machines."""
    if not value:
        return "—"
    if not isinstance(value, datetime):
        return value
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    hint = ago_text(value) if timezone.is_aware(value) else ""
    return format_html(
        '<time datetime="{}" title="{}">{}{}</time>',
        value.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S %Z"),
        local.strftime("%Y-%m-%d %H:%M"),
        format_html(' <span class="ago">({})</span>', hint) if hint else "",
    )
