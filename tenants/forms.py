"""The API-key page's forms: create (a label) and the revoke confirmation."""

from __future__ import annotations

import unicodedata

from django import forms
from django.core.exceptions import ValidationError

from tenants.models import ApiKey

LABEL_MAX = ApiKey._meta.get_field("label").max_length

# Bidirectional overrides and isolates (Unicode category Cf) reorder the text around them: a label
# could read as another one in the key list. Other Cf characters (the zero-width joiner of emoji
# sequences) are harmless.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def no_control_characters(value: str) -> None:
    """Refuse NUL, tabs, newlines, escapes (category Cc) and bidi controls: a label is one line of
    text shown in a table and in the admin, never a place for terminal escapes."""
    for char in value:
        if unicodedata.category(char) == "Cc" or char in BIDI_CONTROLS:
            raise ValidationError(
                "The label may not contain control characters (found U+%(code)04X).",
                code="control_character",
                params={"code": ord(char)},
            )


class ApiKeyCreateForm(forms.Form):
    # The messages are the service's (tenants.services.api_key_issue), which checks the same.
    label = forms.CharField(
        label="Label (who or what will use it)",
        max_length=LABEL_MAX,
        strip=True,
        validators=[no_control_characters],
        error_messages={
            "required": "An API key needs a label (what or who uses it).",
            "max_length": f"The label is longer than {LABEL_MAX} characters.",
        },
    )


class ApiKeyRevokeForm(forms.Form):
    """Only confirm=yes revokes: a stray or forged POST without it revokes nothing."""

    confirm = forms.ChoiceField(choices=[("yes", "Yes, revoke this key")])
