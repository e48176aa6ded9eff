"""API keys page for owners: list, create (the key shown once), revoke after a confirmation.

Creating is post/redirect/get: the POST issues the key, puts the raw key in the session and
redirects; the GET that follows shows it once and removes it. Reloading that page is a GET, so it
neither issues a second key nor shows the first one again.
"""

from __future__ import annotations

import time

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from tenants.access import OWNER_ROLES, org_or_404, page_login_required
from tenants.forms import ApiKeyCreateForm, ApiKeyRevokeForm
from tenants.models import ApiKey
from tenants.services import api_key_issue, api_key_revoke

NEW_KEY_SESSION = "api_key_new"
# The raw key waits in the session only for the redirect that follows its creation; one that was
# never picked up (the browser closed mid-redirect) is dropped rather than shown much later.
NEW_KEY_MAX_AGE_SECONDS = 300


def _take_new_key(request, org) -> dict | None:
    """The key issued just before this request's redirect, removed from the session."""
    new = request.session.get(NEW_KEY_SESSION)
    if not new or new.get("org") != str(org.pk):
        return None  # nothing, or a key of another organisation: that page will show it
    del request.session[NEW_KEY_SESSION]
    if time.time() - new.get("at", 0) > NEW_KEY_MAX_AGE_SECONDS:
        return None
    return new


@page_login_required
@require_http_methods(["GET", "POST"])
def api_keys_page(request, slug: str) -> HttpResponse:
    org = org_or_404(request.user, slug, OWNER_ROLES)
    issued, error = None, None
    form = ApiKeyCreateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if form.is_valid():
            try:
                new = api_key_issue(
                    organization=org,
                    label=form.cleaned_data["label"],
                    created_by=request.user,
                )
            except ValidationError as err:  # the service's own rules (e.g. not the platform)
                error = "; ".join(err.messages)
            else:
                request.session[NEW_KEY_SESSION] = {
                    "org": str(org.pk),
                    "label": new.api_key.label,
                    "raw_key": new.raw_key,
                    "at": time.time(),
                }
                return redirect("api_keys", slug=org.slug)
        else:
            error = "; ".join(form.errors["label"])
    else:
        issued = _take_new_key(request, org)
    response = _page(
        request, org, form=form, issued=issued, error=error, status=400 if error else 200
    )
    if issued:
        response["Cache-Control"] = "no-store"  # the raw key must not sit in a cache
    return response


@page_login_required
@require_http_methods(["GET", "POST"])
def api_key_revoke_view(request, slug: str, key_id: int) -> HttpResponse:
    """GET asks for confirmation; only a POST with confirm=yes revokes. A POST without it (a
    stray or forged form, a double click on an old page) revokes nothing and asks again."""
    org = org_or_404(request.user, slug, OWNER_ROLES)
    key = get_object_or_404(ApiKey, pk=key_id, organization=org)
    if request.method == "POST":
        if ApiKeyRevokeForm(request.POST).is_valid():
            api_key_revoke(api_key=key)
            messages.success(request, f"Key {key.prefix} ({key.label}) revoked.")
            return redirect("api_keys", slug=org.slug)
        return redirect("api_key_revoke", slug=org.slug, key_id=key.id)
    return _page(request, org, confirm_key=key)


def _page(request, org, *, status: int = 200, **context) -> HttpResponse:
    keys = (
        ApiKey.objects.filter(organization=org).select_related("created_by").order_by("-created_at")
    )
    return render(
        request, "tenants/api_keys.html", {"org": org, "keys": keys, **context}, status=status
    )
