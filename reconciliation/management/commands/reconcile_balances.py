import time

from django.core.management.base import CommandError
from django_tenants.utils import schema_context

from inventory.management.commands._base import TenantCommand
from reconciliation.services import ReconciliationBusy, reconciliation_run


class Command(TenantCommand):
    help = (
        "Compare every balance with the sum of its ledger, per tenant. Differences under the tolerance "
        "are corrected; larger ones are queued for review. Incremental unless --full."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--full",
            action="store_true",
            help="check every key (default: keys touched since the last run)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="report only: change nothing, queue nothing"
        )

    def handle(self, *args, schema=None, full=False, dry_run=False, **options):
        mode = "full" if full else "incremental"
        failed = []
        for name in self.schemas(schema):
            started = time.monotonic()
            try:
                with schema_context(name):
                    run = reconciliation_run(mode=mode, dry_run=dry_run, triggered_by="command")
            except ReconciliationBusy as err:
                self.stderr.write(f"{name}: skipped, {err}")
                failed.append(name)
                continue
            took = time.monotonic() - started
            label = f"{run.mode}{' (dry run)' if dry_run else ''}"
            self.stdout.write(
                f"{name}: {label}: {run.keys_checked} keys checked, {run.differences_found} differences, "
                f"{run.auto_corrected} auto-corrected, {run.opened} opened{' (would be)' if dry_run else ''}, {took:.2f}s"
            )
        if failed:
            raise CommandError(f"not reconciled: {', '.join(failed)}")
