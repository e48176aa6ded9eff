from django.core.management.base import CommandError

from operations.models import JobRun
from operations.registry import job_runs_for_command
from tenants.management.base import TenantCommand


class Command(TenantCommand):
    help = (
        "Put back the current balance table (with its indexes), update_inventory_balance() and "
        "inventory_ledger_balance_trigger where they are missing, whatever django_migrations "
        "records, then backfill the balances from the ledger. Keeps every existing row; safe to "
        "re-run. The fix for 'recorded as applied but missing' (after the guide's rollback SQL)."
    )

    def handle(self, *args, schema=None, **options):
        def write(name, result):
            self.stdout.write(f"{name}: {result['summary']} (job {result['job_id']})")
            for line in result["failed"]:
                self.stdout.write(f"  {line}")

        runs = job_runs_for_command(
            self, kind=JobRun.Kind.REPAIR, schemas=self.schemas(schema), write=write
        )
        if runs.not_ok:
            raise CommandError(
                f"repair did not finish cleanly in {', '.join(runs.not_ok)}", returncode=1
            )
