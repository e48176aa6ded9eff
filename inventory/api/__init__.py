"""The tenant JSON API on django-ninja: schemas in schemas.py (the OpenAPI document at
/api/openapi.json and the docs at /api/docs are generated from them), operations in views.py,
the body parser and auth schemes in http.py, the JSON error handlers in errors.py."""

from __future__ import annotations

from ninja import NinjaAPI, Swagger

from inventory.api.errors import install_handlers
from inventory.api.http import AUTH, JsonParser
from inventory.api.views import router

api = NinjaAPI(
    title="Inventory Enterprise API",
    version="1.0.0",
    description=(
        "Tenant API. The organisation is found by X-Org-Id (UUID or slug), the subdomain or the "
        "API key; its data needs one of its API keys (X-Api-Key or Authorization: Bearer) or a "
        "signed-in member. Quantities are decimal strings in the item's canonical unit."
    ),
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url="/docs",
    # validatorUrl null: swagger-ui would otherwise send the document to validator.swagger.io.
    docs=Swagger(settings={"persistAuthorization": False, "validatorUrl": None}),
    parser=JsonParser(),
    auth=AUTH,
)
install_handlers(api)
api.add_router("/", router)
