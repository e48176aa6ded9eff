from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The pages that span organisations: home, fleet, runbook and its jobs, job status, backups."""

    name = "dashboard"
    verbose_name = "Dashboard"
