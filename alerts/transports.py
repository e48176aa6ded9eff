"""How a message leaves: email through Django's email backend (SMTP from the EMAIL_* settings),
webhook as a JSON POST signed with the channel's secret. Each send raises on failure; the caller
records the attempt."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

SIGNATURE_HEADER = "X-Alert-Signature"


class DeliveryError(Exception):
    pass


def public_host_required(url: str) -> None:
    """Refuse a URL whose host resolves to a loopback, private, link-local or reserved address:
    an organisation's owner must not make our servers call into our own network (SSRF).
    ALERT_ALLOW_PRIVATE_TARGETS lifts it (tests, a private deployment)."""
    if settings.ALERT_ALLOW_PRIVATE_TARGETS:
        return
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname or "", parts.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as err:
        raise DeliveryError(f"cannot resolve {parts.hostname!r}: {err}") from err
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise DeliveryError(f"{parts.hostname} is a private or local address ({address})")


def sign(secret: str, body: bytes) -> str:
    """The header's value: sha256=<hex HMAC of the exact body bytes>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_email(*, to: list[str], subject: str, body: str) -> None:
    if not to:
        raise DeliveryError("no recipient addresses")
    connection = get_connection(timeout=settings.EMAIL_TIMEOUT)
    sent = EmailMessage(
        subject=subject,
        body=body,
        from_email=settings.ALERT_FROM_EMAIL,
        to=to,
        connection=connection,
    ).send()
    if sent != 1:
        raise DeliveryError("the email backend sent nothing")


def send_webhook(*, url: str, secret: str, payload: dict) -> None:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "inventory-enterprise-alerts",
            SIGNATURE_HEADER: sign(secret, body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.ALERT_WEBHOOK_TIMEOUT_SECONDS) as r:
            status = r.status
    except urllib.error.HTTPError as err:
        raise DeliveryError(f"HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise DeliveryError(f"{type(err).__name__}: {getattr(err, 'reason', err)}") from err
    if not 200 <= status < 300:
        raise DeliveryError(f"HTTP {status}")


def apprise_url_valid(url: str) -> bool:
    import apprise

    return bool(apprise.Apprise().add(url))


def send_apprise(*, url: str, title: str, body: str) -> None:
    """Chat services through Apprise (a maintained client for ~100 of them). Apprise reports
    failure as False and logs the reason: the log is captured to record it."""
    import apprise

    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise DeliveryError("not a service URL Apprise understands")
    with apprise.LogCapture(level=apprise.logging.WARNING) as log:
        ok = notifier.notify(title=title, body=body)
    if not ok:
        raise DeliveryError((log.getvalue().strip() or "Apprise reported a failure")[-500:])
