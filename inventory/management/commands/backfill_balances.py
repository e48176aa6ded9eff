from django.core.management.base import CommandError

from inventory.management.commands._base import TenantCommand
from inventory.tasks import backfill_work, run_recorded
from operations.models import JobRun


class Command(TenantCommand):
    help = (
        "Rebuild inventory_balances from the ledger, per tenant. Safe to re-run and to run while "
        "writes continue. Each schema is recorded as a backfill job (fleet, runbook); a schema that "
        "fails is reported and skipped (exit 1)."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--chunk-items", type=int, default=500, help="items per locked chunk (default 500)"
        )

    def handle(self, *args, schema=None, chunk_items=500, **options):
        if chunk_items < 1:
            raise CommandError("--chunk-items must be at least 1.")
        schemas = self.schemas(schema)

        def write(name, result):
            self.stdout.write(
                f"{name}: {result['ledger_rows']} ledger rows read, {result['balance_rows_written']} "
                f"balance rows written, {result['balance_rows_removed']} removed, {result['seconds']:.2f}s"
            )

        failed = run_recorded(
            kind=JobRun.Kind.BACKFILL,
            schemas=schemas,
            work_for=lambda name: backfill_work(name, chunk_items=chunk_items),
            write=write,
            write_error=self.stderr.write,
        )
        if failed:
            raise CommandError(
                f"backfill failed in {len(failed)} of {len(schemas)} schema(s): {', '.join(failed)}",
                returncode=1,
            )
