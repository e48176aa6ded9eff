from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    verbose_name = "Reconciliation"

    def ready(self) -> None:
        from inventory.signals import balances_rebuilt
        from reconciliation import jobs  # noqa: F401 - declares the reconcile job kind
        from reconciliation.receivers import close_resolved_after_backfill

        balances_rebuilt.connect(
            close_resolved_after_backfill,
            dispatch_uid="reconciliation.close_resolved_after_backfill",
        )
