from django.core.management.base import CommandError

from inventory.management.commands._base import TenantCommand
from inventory.tasks import rollback_work, run_recorded
from operations.models import JobRun


class Command(TenantCommand):
    help = (
        "The migration guide's rollback for ONE organisation: drop inventory_ledger_balance_trigger, "
        "update_inventory_balance() and inventory_balances. The ledger, its append-only guard and "
        "its txid column stay. Undo with repair_balances."
    )

    def add_arguments(self, parser):
        parser.add_argument("--schema", required=True, help="the tenant schema to roll back")

    def handle(self, *args, schema, **options):
        [schema] = self.schemas(schema)
        failed = run_recorded(
            kind=JobRun.Kind.ROLLBACK,
            schemas=[schema],
            work_for=rollback_work,
            write=lambda name, result: self.stdout.write(
                f"{name}: {result['summary']}. Put them back with: "
                f"manage.py repair_balances --schema {name}"
            ),
            write_error=self.stderr.write,
        )
        if failed:
            raise CommandError(f"rollback failed in {schema}", returncode=1)
