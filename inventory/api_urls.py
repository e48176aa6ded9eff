from django.urls import path

from inventory import api, openapi

urlpatterns = [
    path("items-enterprise", api.items_enterprise, name="api-items-enterprise"),
    path("items", api.items, name="api-items"),
    path("locations", api.locations, name="api-locations"),
    path("balances", api.balances, name="api-balances"),
    path("ledger", api.ledger, name="api-ledger"),
    path("openapi.json", openapi.openapi_json, name="api-openapi"),
]
