"""URLs served when a request has been routed to an organisation: its API and pages, plus the
platform URLs (health, login) so that they answer on every host."""

from django.urls import include, path

from config.urls_public import urlpatterns as public_urlpatterns

urlpatterns = [
    path("api/", include("inventory.api_urls")),
    # The platform's copy of the API document (api/…) is shadowed here; leaving it out keeps
    # the "api" URL namespace unique.
    *[p for p in public_urlpatterns if not str(p.pattern).startswith("api/")],
]
# Errors raised before a view runs (e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE read by a
# middleware): JSON on /api/, Django's pages elsewhere.
handler400 = "inventory.api.errors.handler400"
handler500 = "inventory.api.errors.handler500"
