"""The queue's filters as a form: every value from the address bar is bounded before it reaches
a query (an unbounded number such as 1e999999 overflowed NUMERIC(18,6): a 500)."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from inventory.forms import AsciiIntegerField
from reconciliation.models import Discrepancy

# The largest size a discrepancy can have: abs_difference is NUMERIC(18, 6).
MAX_SIZE = Decimal("999999999999.999999")

SORTS = {
    "size": ("Largest difference first", ["-abs_difference", "-id"]),
    "size_asc": ("Smallest difference first", ["abs_difference", "id"]),
    "age": ("Oldest first", ["created_at", "id"]),
    "newest": ("Newest first", ["-created_at", "-id"]),
    "org": ("Organisation", ["organization__slug", "-abs_difference", "-id"]),
    "status": ("Status", ["status", "-abs_difference", "-id"]),
}


def _size(label: str) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=False,
        max_digits=18,
        decimal_places=6,
        min_value=Decimal(0),
        max_value=MAX_SIZE,
    )


class QueueFilterForm(forms.Form):
    org = forms.ChoiceField(label="Organisation", required=False)
    status = forms.ChoiceField(
        label="Status",
        required=False,
        choices=[("all", "All"), *Discrepancy.Status.choices],
    )
    # The run that found them (alerts link to the queue filtered to their run).
    run = AsciiIntegerField(label="Run", required=False, min_value=1, max_value=2**63 - 1)
    min = _size("Size at least")
    max = _size("Size below")
    sort = forms.ChoiceField(
        label="Sort", required=False, choices=[(k, v[0]) for k, v in SORTS.items()]
    )

    def __init__(self, data, *, orgs):
        super().__init__(data)
        self.fields["org"].choices = [("", "All"), *((o.slug, o.slug) for o in orgs)]

    def value(self, name: str, default=None):
        """The cleaned value of a valid field (else the default): a bad field is reported and
        ignored, the good ones still apply."""
        value = self.cleaned_data.get(name) if name not in self.errors else None
        return default if value in (None, "") else value

