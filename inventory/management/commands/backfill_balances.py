from django.core.management.base import CommandError

from operations.models import JobRun
from operations.registry import job_runs_for_command
from tenants.management.base import TenantCommand


class Command(TenantCommand):
    help = (
        "Rebuild inventory_balances from the ledger, per tenant. Safe to re-run and to run while "
        "writes continue. Each schema is recorded as a backfill job (fleet, runbook); a schema that "
        "fails or whose backfill is already running is reported and skipped (exit 1)."
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
        runs = job_runs_for_command(
            self, kind=JobRun.Kind.BACKFILL, schemas=schemas, options={"chunk_items": chunk_items}
        )
        if runs.not_ok:
            raise CommandError(
                f"backfill failed in {len(runs.not_ok)} of {len(schemas)} schema(s): "
                f"{', '.join(runs.not_ok)}",
                returncode=1,
            )
