from __future__ import annotations

from django import forms
from django.core.validators import URLValidator, validate_email

from alerts.models import Channel


class ChannelForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=Channel.Kind.choices, label="Kind")
    target = forms.CharField(
        max_length=500,
        label="Address or URL",
        help_text=(
            "Email: one or more addresses, separated by commas. Webhook: http(s) URL. "
            "Chat: an Apprise URL (slack://..., msteams://..., matrix://...)."
        ),
    )
    secret = forms.CharField(
        max_length=100,
        required=False,
        label="Webhook secret",
        help_text="Signs every POST (X-Alert-Signature: sha256=HMAC of the body). Blank: generated.",
    )

    def clean(self):
        data = super().clean()
        kind, target = data.get("kind"), (data.get("target") or "").strip()
        if kind == Channel.Kind.EMAIL:
            addresses = [a.strip() for a in target.split(",") if a.strip()]
            if not addresses:
                self.add_error("target", "Give at least one address.")
            for address in addresses:
                try:
                    validate_email(address)
                except forms.ValidationError:
                    self.add_error("target", f"Not an email address: {address}")
            data["target"] = ", ".join(addresses)
        elif kind == Channel.Kind.WEBHOOK:
            # Only http(s): urllib would also open file:// and ftp:// addresses.
            try:
                URLValidator(schemes=["http", "https"])(target)
            except forms.ValidationError:
                self.add_error("target", "Give an http:// or https:// URL.")
            data["target"] = target
        elif kind == Channel.Kind.APPRISE:
            from alerts.transports import apprise_url_valid

            if not apprise_url_valid(target):
                self.add_error("target", "Not a service URL Apprise understands.")
            data["target"] = target
        return data
