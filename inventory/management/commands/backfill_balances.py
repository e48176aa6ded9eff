from django_tenants.utils import schema_context

from inventory.management.commands._base import TenantCommand
from inventory.services.backfill import balances_backfill


class Command(TenantCommand):
    help = "Rebuild inventory_balances from the ledger, per tenant. Safe to re-run and to run while writes continue."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--chunk-items", type=int, default=500, help="items per locked chunk (default 500)"
        )

    def handle(self, *args, schema=None, chunk_items=500, **options):
        if chunk_items < 1:
            from django.core.management.base import CommandError

            raise CommandError("--chunk-items must be at least 1.")
        for name in self.schemas(schema):
            with schema_context(name):
                result = balances_backfill(chunk_items=chunk_items)
            self.stdout.write(
                f"{name}: {result.ledger_rows} ledger rows read, {result.balance_rows_written} balance rows "
                f"written, {result.balance_rows_removed} removed, {result.seconds:.2f}s"
            )
