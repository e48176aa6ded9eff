from django.core.management.base import CommandError

from inventory.management.commands._base import TenantCommand
from inventory.tasks import REPAIR, repair_work, run_recorded


class Command(TenantCommand):
    help = (
        "Put back the current balance table (with its indexes), update_inventory_balance() and "
        "inventory_ledger_balance_trigger where they are missing, whatever django_migrations "
        "records, then backfill the balances from the ledger. Keeps every existing row; safe to "
        "re-run. The fix for 'recorded as applied but missing' (after the guide's rollback SQL)."
    )

    def handle(self, *args, schema=None, **options):
        schemas = self.schemas(schema)
        not_ok = []

        def write(name, result):
            self.stdout.write(f"{name}: {result['summary']}")
            for line in result["failed"]:
                self.stdout.write(f"  {line}")
            if not result["ok"]:
                not_ok.append(name)

        failed = run_recorded(
            kind=REPAIR,
            schemas=schemas,
            work_for=repair_work,
            write=write,
            write_error=self.stderr.write,
        )
        if failed or not_ok:
            raise CommandError(
                f"repair did not finish cleanly in {', '.join(failed + not_ok)}", returncode=1
            )
