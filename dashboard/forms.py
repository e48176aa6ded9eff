"""The fleet page's forms: start a fleet run, create an organisation, confirm (de)activation.
The services check the same things; the forms only turn a POST into their arguments."""

from __future__ import annotations

from django import forms

from dashboard.fleet_runs import MAX_PARALLEL
from dashboard.models import FleetRun


class FleetRunStartForm(forms.Form):
    operation = forms.ChoiceField(choices=FleetRun.Operation.choices)
    only = forms.ChoiceField(
        choices=[("", "every active organisation"), ("needs-attention", "those needing attention")],
        required=False,
    )
    org = forms.SlugField(required=False, help_text="or one organisation, by slug")
    parallel = forms.IntegerField(min_value=1, max_value=MAX_PARALLEL, initial=2)


class OrganizationCreateForm(forms.Form):
    slug = forms.CharField(max_length=42, strip=True)  # the service checks its form
    name = forms.CharField(max_length=200, strip=True)
    owner_email = forms.EmailField(label="First owner's email")


class ConfirmSlugForm(forms.Form):
    confirm_slug = forms.CharField(strip=True)
