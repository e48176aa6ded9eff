"""URLs served on the platform host, where no organisation is selected (also mounted on tenant
hosts, see urls_tenant)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from dashboard import backups as backup_pages
from dashboard import fleet_pages, org_home, views
from inventory import pages as inventory_pages
from inventory.api_urls import docs_urlpatterns as api_docs_urlpatterns
from operations import drill_pages
from operations.views import health
from reconciliation import pages as reconciliation_pages
from tenants import key_pages

urlpatterns = [
    path("health", health, name="health"),
    path("api/", include(api_docs_urlpatterns)),  # OpenAPI document and docs, no credentials
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", views.home, name="home"),
    path("orgs/", views.my_orgs, name="my_orgs"),
    path("fleet/", views.fleet_page, name="fleet"),
    path("fleet/runs/", fleet_pages.fleet_run_create, name="fleet_run_create"),
    path("fleet/runs/<int:run_id>/", fleet_pages.fleet_run_page, name="fleet_run"),
    path(
        "fleet/runs/<int:run_id>/<str:action>/",
        fleet_pages.fleet_run_action,
        name="fleet_run_action",
    ),
    path("fleet/orgs/", fleet_pages.organization_new, name="organization_new"),
    path(
        "fleet/orgs/<slug:slug>/<str:action>/",
        fleet_pages.organization_active,
        name="organization_active",
    ),
    path("jobs/<int:job_id>/", views.job_status, name="job_status"),
    path("orgs/<slug:slug>/runbook/", views.runbook_page, name="runbook"),
    path("orgs/<slug:slug>/runbook/jobs/<str:kind>/", views.runbook_job, name="runbook_job"),
    path("orgs/<slug:slug>/runbook/rollback/", views.runbook_rollback, name="runbook_rollback"),
    path("orgs/<slug:slug>/", org_home.org_home, name="org_home"),
    path("orgs/<slug:slug>/balances/", inventory_pages.balances_page, name="balances"),
    path("orgs/<slug:slug>/balances.csv", inventory_pages.balances_csv, name="balances_csv"),
    path("orgs/<slug:slug>/exports/", inventory_pages.export_start, name="export_start"),
    path(
        "orgs/<slug:slug>/exports/<int:job_id>/",
        inventory_pages.export_status,
        name="export_status",
    ),
    path(
        "orgs/<slug:slug>/exports/<int:job_id>/download/",
        inventory_pages.export_download,
        name="export_download",
    ),
    path("orgs/<slug:slug>/items/<int:item_id>/", inventory_pages.item_page, name="item"),
    path("orgs/<slug:slug>/api-keys/", key_pages.api_keys_page, name="api_keys"),
    path(
        "orgs/<slug:slug>/api-keys/<int:key_id>/revoke/",
        key_pages.api_key_revoke_view,
        name="api_key_revoke",
    ),
    path("reconciliation/", reconciliation_pages.queue_page, name="reconciliation"),
    path("reconciliation/run/", reconciliation_pages.run_now, name="reconcile_now"),
    path(
        "reconciliation/approve/",
        reconciliation_pages.bulk_approve,
        name="discrepancies_bulk_approve",
    ),
    path("reconciliation/<int:pk>/", reconciliation_pages.discrepancy_page, name="discrepancy"),
    path(
        "reconciliation/<int:pk>/<str:action>/",
        reconciliation_pages.discrepancy_resolve,
        name="discrepancy_resolve",
    ),
    path("backups/", backup_pages.backups_page, name="backups"),
    path("backups/now/", backup_pages.backup_now, name="backup_now"),
    path("backups/drill/", drill_pages.drill_now, name="drill_now"),
    path("backups/restore-org/", drill_pages.restore_org_now, name="restore_org_now"),
    path("", include("alerts.urls")),
]
