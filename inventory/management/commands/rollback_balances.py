from django.core.management.base import CommandError

from operations.models import JobRun
from operations.registry import job_runs_for_command
from tenants.management.base import TenantCommand


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
        runs = job_runs_for_command(
            self,
            kind=JobRun.Kind.ROLLBACK,
            schemas=[schema],
            write=lambda name, result: self.stdout.write(
                f"{name}: {result['summary']}. Put them back with: "
                f"manage.py repair_balances --schema {name} (job {result['job_id']})"
            ),
        )
        if runs.not_ok:
            raise CommandError(f"rollback failed in {schema}", returncode=1)
