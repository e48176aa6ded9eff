from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "inventory"
    verbose_name = "Inventory"

    def ready(self) -> None:
        # Declares the inventory's job kinds (backfill, validate, repair, rollback) and its
        # "balances" check of /health to operations.
        from inventory import health, jobs  # noqa: F401
