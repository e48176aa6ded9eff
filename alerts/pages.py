"""Alerts pages: platform admins see every alert and manage the platform channels; an owner sees
their organisation's alerts and manages its own channels, never another organisation's."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from alerts.forms import ChannelForm
from alerts.models import Channel
from alerts.selectors import alerts_list, channels_with_last_test
from alerts.services import channel_create, channel_delete, channel_test
from tenants.access import OWNER_ROLES, org_or_404, page_login_required, platform_admin_required


def _alerts(request, org=None) -> HttpResponse:
    open_, resolved = alerts_list(organization=org)
    return render(
        request, "alerts/alerts.html", {"org": org, "open_alerts": open_, "resolved": resolved}
    )


def _channels(request, org=None) -> HttpResponse:
    form = ChannelForm(request.POST or None, organization=org)
    if request.method == "POST" and form.is_valid():
        channel_create(
            **form.cleaned_data, organization=org, created_by=request.user.get_username()
        )
        return redirect(_channels_url(org))
    rows = channels_with_last_test(organization=org, platform=org is None)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "alerts/channels.html", {"org": org, "rows": rows, "form": form}, status=status
    )


def _channels_url(org) -> str:
    from django.urls import reverse

    return reverse("org_alert_channels", args=[org.slug]) if org else reverse("alert_channels")


def _channel(org, channel_id: int) -> Channel:
    """The channel if it belongs to this scope: another organisation's is a 404."""
    channel = Channel.objects.filter(id=channel_id, organization=org).first()
    if channel is None:
        raise Http404("No such channel.")
    return channel


def _test(request, org, channel_id: int) -> HttpResponse:
    channel = _channel(org, channel_id)
    delivery = channel_test(channel=channel, requested_by=request.user.get_username())
    if request.headers.get("HX-Request"):
        return render(request, "alerts/_test_result.html", {"test": delivery})
    return redirect(_channels_url(org))


def _delete(request, org, channel_id: int) -> HttpResponse:
    channel_delete(channel=_channel(org, channel_id))
    return redirect(_channels_url(org))


@platform_admin_required
@require_GET
def alerts_page(request):
    return _alerts(request)


@platform_admin_required
@require_http_methods(["GET", "POST"])
def channels_page(request):
    return _channels(request)


@platform_admin_required
@require_POST
def channel_test_view(request, channel_id: int):
    return _test(request, None, channel_id)


@platform_admin_required
@require_POST
def channel_delete_view(request, channel_id: int):
    return _delete(request, None, channel_id)


@page_login_required
@require_GET
def org_alerts_page(request, slug: str):
    return _alerts(request, org_or_404(request.user, slug, OWNER_ROLES))


@page_login_required
@require_http_methods(["GET", "POST"])
def org_channels_page(request, slug: str):
    return _channels(request, org_or_404(request.user, slug, OWNER_ROLES))


@page_login_required
@require_POST
def org_channel_test_view(request, slug: str, channel_id: int):
    return _test(request, org_or_404(request.user, slug, OWNER_ROLES), channel_id)


@page_login_required
@require_POST
def org_channel_delete_view(request, slug: str, channel_id: int):
    return _delete(request, org_or_404(request.user, slug, OWNER_ROLES), channel_id)
