from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from alerts.models import Channel

TARGET_HELP = (
    "Email: one or more addresses, separated by commas. Webhook: http(s) URL. "
    "Chat: an Apprise URL (slack://..., msteams://..., matrix://...)."
)


def clean_target(kind: str, target: str, *, for_organization: bool = False) -> str:
    """The target in its stored form, or ValidationError naming what is wrong; the pages' form
    and the admin's both use it. An organisation's channel may not call a private address, nor
    use Apprise (whose json://, matrix://... services reach any host)."""
    target = (target or "").strip()
    if for_organization and kind == Channel.Kind.APPRISE:
        raise ValidationError("Chat channels are set up by platform admins; use a webhook.")
    if kind == Channel.Kind.EMAIL:
        addresses = [a.strip() for a in target.split(",") if a.strip()]
        if not addresses:
            raise ValidationError("Give at least one address.")
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                raise ValidationError(f"Not an email address: {address}") from None
        return ", ".join(addresses)
    if kind == Channel.Kind.WEBHOOK:
        # Only http(s): urllib would also open file:// and ftp:// addresses.
        try:
            URLValidator(schemes=["http", "https"])(target)
        except ValidationError:
            raise ValidationError("Give an http:// or https:// URL.") from None
        if for_organization:
            from alerts.transports import DeliveryError, public_host_required

            try:
                public_host_required(target)
            except DeliveryError as err:
                raise ValidationError(str(err)) from None
        return target
    if kind == Channel.Kind.APPRISE:
        from alerts.transports import apprise_url_valid

        if not apprise_url_valid(target):
            raise ValidationError("Not a service URL Apprise understands.")
    return target


class ChannelForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=Channel.Kind.choices, label="Kind")
    target = forms.CharField(max_length=500, label="Address or URL", help_text=TARGET_HELP)
    secret = forms.CharField(
        max_length=100,
        required=False,
        label="Webhook secret",
        help_text="Signs every POST (X-Alert-Signature: sha256=HMAC of the body). Blank: generated.",
    )

    def __init__(self, *args, organization=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization

    def clean(self):
        data = super().clean()
        if data.get("kind"):
            try:
                data["target"] = clean_target(
                    data["kind"],
                    data.get("target", ""),
                    for_organization=self.organization is not None,
                )
            except ValidationError as err:
                self.add_error("target", err)
        return data


class ChannelAdminForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = ["name", "kind", "target", "secret", "organization", "is_active"]
        help_texts = {"target": TARGET_HELP}

    def clean(self):
        data = super().clean()
        if data.get("kind"):
            try:
                data["target"] = clean_target(
                    data["kind"],
                    data.get("target", ""),
                    for_organization=data.get("organization") is not None,
                )
            except ValidationError as err:
                self.add_error("target", err)
        return data
