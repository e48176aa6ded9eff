"""URLs served when a request has been routed to an organisation: its API and pages, plus the
platform URLs (health, login) so that they answer on every host."""

from django.urls import include, path

from config.urls_public import urlpatterns as public_urlpatterns

urlpatterns = [
    path("api/", include("inventory.api_urls")),
    *public_urlpatterns,
]
