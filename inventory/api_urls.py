from django.urls import path

from inventory import api

urlpatterns = [
    path("items-enterprise", api.items_enterprise, name="api-items-enterprise"),
]
