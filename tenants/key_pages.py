"""API keys page for owners: list, create (the key shown once), revoke."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from tenants.access import OWNER_ROLES, org_or_404, page_login_required
from tenants.models import ApiKey
from tenants.services import api_key_issue, api_key_revoke


@page_login_required
@require_http_methods(["GET", "POST"])
def api_keys_page(request, slug: str) -> HttpResponse:
    org = org_or_404(request.user, slug, OWNER_ROLES)
    issued, error = None, None
    if request.method == "POST":
        try:
            issued = api_key_issue(
                organization=org, label=request.POST.get("label", ""), created_by=request.user
            )
        except ValidationError as err:
            error = "; ".join(err.messages)
    keys = (
        ApiKey.objects.filter(organization=org).select_related("created_by").order_by("-created_at")
    )
    response = render(
        request,
        "tenants/api_keys.html",
        {"org": org, "keys": keys, "issued": issued, "error": error},
        status=400 if error else 200,
    )
    if issued:
        response["Cache-Control"] = "no-store"  # the raw key must not sit in a cache
    return response


@page_login_required
@require_POST
def api_key_revoke_view(request, slug: str, key_id: int) -> HttpResponse:
    org = org_or_404(request.user, slug, OWNER_ROLES)
    key = get_object_or_404(ApiKey, pk=key_id, organization=org)
    api_key_revoke(api_key=key)
    messages.success(request, f"Key {key.prefix} ({key.label}) revoked.")
    return redirect("api_keys", slug=org.slug)
