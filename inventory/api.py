"""The tenant JSON API. Routing and access (key or member) are settled by the middleware before
these views run; they only validate input and call selectors and services."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from inventory import selectors


@require_GET
def items_enterprise(request):
    items = selectors.items_with_on_hand()
    return JsonResponse(
        {"organization": request.tenant.slug, "results": items, "count": len(items)}
    )
