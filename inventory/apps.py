from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "inventory"
    verbose_name = "Inventory"

    def ready(self) -> None:
        # Declares the inventory's job kinds (backfill, validate, repair, rollback) to operations.
        from inventory import jobs  # noqa: F401
