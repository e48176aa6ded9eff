"""The Django admin through the real middleware: on the platform host (no organisation) the
platform tables, and tenant tables neither listed nor a 500; on an organisation's host its tenant
tables as well. (django-tenants' admin templates read request.tenant.schema_name, which is None on
the platform host: every platform admin page was a 500.)"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse
from django_tenants.utils import schema_context

from tests.factories import PASSWORD, make_user
from tests.inventory.helpers import make_catalog
from tests.page_helpers import text

pytestmark = pytest.mark.django_db

TENANT_APP_LABELS = {"inventory"}
PLATFORM_MODELS = sorted(
    f"{m._meta.app_label}/{m._meta.model_name}"
    for m in admin.site._registry
    if m._meta.app_label not in TENANT_APP_LABELS
)
TENANT_MODELS = sorted(
    f"{m._meta.app_label}/{m._meta.model_name}"
    for m in admin.site._registry
    if m._meta.app_label in TENANT_APP_LABELS
)


def admin_client(user, host: str) -> Client:
    client = Client(HTTP_HOST=host)
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def platform(admin_user):
    return admin_client(admin_user, "localhost")


@pytest.fixture
def on_acme(admin_user):
    return admin_client(admin_user, "acme.localhost")


@pytest.fixture
def acme_item(acme):
    with schema_context("acme"):
        [item], _, _ = make_catalog(items=1, locations=1, lots_per_item=0, prefix="ADM")
    return item


def test_it_lists_the_platform_tables_on_the_platform_host(platform):
    response = platform.get("/admin/")
    assert response.status_code == 200
    html = text(response)
    for url in [
        "/admin/tenants/organization/",
        "/admin/auth/user/",
        "/admin/reconciliation/discrepancy/",
        "/admin/tenants/apikey/",
    ]:
        assert f'href="{url}"' in html
    assert "/admin/inventory/" not in html  # tenant tables are not listed here
    assert ">Discrepancies<" in html and ">Organizations<" in html
    assert platform.get("/admin/inventory/").status_code == 404  # no app page either


@pytest.mark.parametrize("model", PLATFORM_MODELS)
def test_every_platform_changelist_opens_on_the_platform_host(model, platform, acme):
    response = platform.get(f"/admin/{model}/")
    assert response.status_code == 200, model


def test_the_platform_changelists_show_their_rows(platform, acme, globex):
    html = text(platform.get("/admin/tenants/organization/"))
    assert 'href="//acme.localhost/admin/"' in html and 'href="//globex.localhost/admin/"' in html
    assert text(platform.get("/admin/auth/user/")).count("platform-admin") >= 1


def test_an_organisation_opens_in_the_platform_admin(platform, acme):
    response = platform.get(f"/admin/tenants/organization/{acme.pk}/change/")
    assert response.status_code == 200 and "Acme Corporation" in text(response)


@pytest.mark.parametrize("model", TENANT_MODELS)
def test_tenant_tables_on_the_platform_host_are_a_403_that_names_the_right_host(
    model, platform, acme_item
):
    for path in [f"/admin/{model}/", f"/admin/{model}/add/", f"/admin/{model}/1/change/"]:
        response = platform.get(path)
        assert response.status_code == 403, path
        html = text(response)
        assert "organisation&#x27;s host" in html and "acme.localhost:8000/admin/" in html
    with schema_context("acme"):
        assert apps.get_model("inventory", "Item").objects.get().name == acme_item.name


def test_tenant_tables_on_the_platform_host_still_ask_anonymous_visitors_to_log_in(anon):
    response = anon.get("/admin/inventory/item/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_it_lists_the_tenant_tables_on_the_organisations_host(on_acme, acme_item):
    response = on_acme.get("/admin/")
    assert response.status_code == 200
    html = text(response)
    for url in ["/admin/inventory/item/", "/admin/inventory/ledgerentry/", "/admin/auth/user/"]:
        assert f'href="{url}"' in html
    assert "Ledger entries" in html


@pytest.mark.parametrize("model", TENANT_MODELS + ["tenants/organization", "auth/user"])
def test_every_changelist_opens_on_the_organisations_host(model, on_acme, acme_item):
    assert on_acme.get(f"/admin/{model}/").status_code == 200, model


def test_it_shows_only_that_organisations_rows(admin_user, acme_item, globex):
    with schema_context("globex"):
        make_catalog(items=1, locations=1, lots_per_item=0, prefix="GLX")
    acme_html = text(admin_client(admin_user, "acme.localhost").get("/admin/inventory/item/"))
    globex_html = text(admin_client(admin_user, "globex.localhost").get("/admin/inventory/item/"))
    assert "ADM-0000" in acme_html and "GLX-0000" not in acme_html
    assert "GLX-0000" in globex_html and "ADM-0000" not in globex_html


def test_it_edits_an_item_on_the_organisations_host(on_acme, acme_item):
    url = reverse("admin:inventory_item_change", args=[acme_item.id])
    assert on_acme.get(url).status_code == 200
    response = on_acme.post(
        url, {"sku": acme_item.sku, "name": "Renamed in admin", "unit": "ml", "is_active": "on"}
    )
    assert response.status_code == 302, text(response)[:2000]
    with schema_context("acme"):
        item = apps.get_model("inventory", "Item").objects.get()
    assert (item.name, item.unit) == ("Renamed in admin", "g")  # the unit is read-only
    entry = LogEntry.objects.get()
    assert entry.object_repr and entry.object_id == str(acme_item.id)


def test_staff_without_superuser_cannot_open_the_admin(acme):
    user = make_user("not-staff", org=acme, role="owner")
    response = admin_client(user, "localhost").get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
