"""The balance browser's filters and the item page's history cursor as forms: every value from the
address bar is bounded before it reaches a query. A bad value is a 400 that names the field (as the
discrepancy queue does); the valid filters still apply, so the page still shows rows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import ValidationError

from inventory.models import Location, Lot, MovementKind
from inventory.selectors import BalanceFilters
from inventory.services.ledger_rows import timestamp_problem

SORTS = {
    "item": ("item__sku", "location__code", "lot__code"),
    "-item": ("-item__sku", "location__code", "lot__code"),
    "location": ("location__code", "item__sku", "lot__code"),
    "qty": ("qty_canonical", "item__sku", "location__code"),
    "-qty": ("-qty_canonical", "item__sku", "location__code"),
    "updated": ("-updated_at", "item__sku"),
}
SIGNS = [("", "Any"), ("positive", "Positive"), ("zero", "Zero"), ("negative", "Negative")]

# 50 rows a page: a million pages is far beyond any organisation's balance table.
MAX_PAGE = 1_000_000
# Ledger ids are BIGINT: a larger cursor would fail in PostgreSQL, not match nothing.
MAX_LEDGER_ID = 2**63 - 1
HISTORY_PAGE = 50
CHART_DAYS = (1, 7, 30, 90, 365)  # inventory.history.RANGES
MAX_HISTORY_PAGE = 200

_ASCII_INT = re.compile(r"-?[0-9]+")


class AsciiIntegerField(forms.IntegerField):
    """A whole number written with the digits 0-9 only. int() also reads '١٢' (Arabic-Indic),
    '１２' (full-width) and '1_000'; '²'.isdigit() is True yet int('²') fails. None of those is
    what a link of ours sends."""

    def to_python(self, value):
        if value not in self.empty_values:
            value = str(value).strip()
            if not _ASCII_INT.fullmatch(value):
                raise ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


def _code_field(label: str, model) -> forms.CharField:
    return forms.CharField(
        label=label, required=False, max_length=model._meta.get_field("code").max_length
    )


class _BoundedForm(forms.Form):
    def value(self, name: str, default=None):
        """The cleaned value of a valid field (else the default): a bad field is reported and
        ignored, the good ones still apply."""
        value = self.cleaned_data.get(name) if name not in self.errors else None
        return default if value in (None, "") else value


@dataclass(frozen=True)
class BalanceQuery:
    """The valid part of a balance filter: what the page shows and the CSV exports."""

    q: str = ""
    location: str = ""
    lot: str = ""  # a lot code, "none" for no lot
    sign: str = ""  # "", "zero", "negative", "positive"
    sort: str = "item"
    as_of: object = None  # an aware datetime (by occurred_at), or None for now

    @property
    def filters(self) -> BalanceFilters:
        # Location and lot filter as the API does; the page adds search and sign.
        return BalanceFilters(location=self.location, lot=self.lot)

    def as_params(self, **override) -> str:
        data = {
            "q": self.q,
            "location": self.location,
            "lot": self.lot,
            "sign": self.sign,
            "sort": self.sort,
            "as_of": self.as_of.isoformat() if self.as_of else "",
        } | override
        return urlencode({k: v for k, v in data.items() if v})


class AsOfField(forms.CharField):
    """An instant, ISO 8601 or the datetime-local input's `2026-11-24T09:30` (taken in the
    default time zone), checked by the ledger's own timestamp rule."""

    def __init__(self, **kwargs):
        super().__init__(label="As of", required=False, max_length=64, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return None
        parsed, problem = timestamp_problem(value)
        if problem:
            raise ValidationError(problem, code="invalid")
        return parsed


class BalanceFilterForm(_BoundedForm):
    q = forms.CharField(label="Item (SKU or name)", required=False, max_length=100)
    location = _code_field("Location", Location)
    lot = _code_field("Lot", Lot)
    sign = forms.ChoiceField(label="Balance", required=False, choices=SIGNS)
    sort = forms.ChoiceField(label="Sort", required=False, choices=[(k, k) for k in SORTS])
    page = AsciiIntegerField(label="Page", required=False, min_value=1, max_value=MAX_PAGE)
    as_of = AsOfField()

    def query(self) -> BalanceQuery:
        return BalanceQuery(
            q=self.value("q", ""),
            location=self.value("location", ""),
            lot=self.value("lot", ""),
            sign=self.value("sign", ""),
            sort=self.value("sort", "item"),
            as_of=self.value("as_of"),
        )


class HistoryForm(_BoundedForm):
    """The item page's ledger history: newest first, `before` is the keyset cursor (an id)."""

    before = AsciiIntegerField(
        label="Older than", required=False, min_value=1, max_value=MAX_LEDGER_ID
    )
    limit = AsciiIntegerField(label="Rows", required=False, min_value=1, max_value=MAX_HISTORY_PAGE)
    as_of = AsOfField()

    # The chart's range and the history's filters (issue 15): a kind, and occurred-at dates.
    days = forms.TypedChoiceField(
        label="Chart range", required=False, coerce=int, choices=[(d, d) for d in CHART_DAYS]
    )
    kind = forms.ChoiceField(
        label="Kind", required=False, choices=[("", "Any"), *MovementKind.choices]
    )
    since = forms.DateField(label="From", required=False, input_formats=["%Y-%m-%d"])
    until = forms.DateField(label="To", required=False, input_formats=["%Y-%m-%d"])

    def filter_params(self) -> dict[str, str]:
        """The valid filters, for the pager's links (the cursor is added to them)."""
        params = {
            "kind": self.value("kind", ""),
            "since": self.value("since") and self.value("since").isoformat(),
            "until": self.value("until") and self.value("until").isoformat(),
            "days": self.value("days") if self.value("days") not in (None, 30) else "",
            "as_of": self.value("as_of") and self.value("as_of").isoformat(),
        }
        return {k: v for k, v in params.items() if v}


class TransferForm(forms.Form):
    """The item page's transfer: bounded here, every rule in the transfer service (its field
    errors are shown on these fields)."""

    qty = forms.CharField(label="Quantity", max_length=40)
    from_location = _code_field("From location", Location)
    from_lot = _code_field("From lot", Lot)
    to_location = _code_field("To location", Location)
    to_lot = _code_field("To lot", Lot)
    reference = forms.CharField(label="Reference", required=False, max_length=200)
    idempotency_key = forms.CharField(widget=forms.HiddenInput, required=False, max_length=200)


class StockPolicyForm(forms.Form):
    no_negative_stock = forms.BooleanField(
        label="Refuse postings that would leave stock below zero", required=False
    )
