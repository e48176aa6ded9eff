from django.core.management.base import CommandError

from operations.models import JobRun
from operations.registry import job_runs_for_command
from tenants.management.base import TenantCommand


class Command(TenantCommand):
    help = (
        "Compare every balance with the sum of its ledger, per tenant. Differences under the tolerance "
        "are corrected; larger ones are queued for review; open ones whose difference is gone are "
        "closed. Incremental unless --full. Each tenant's run is recorded as a job, as from the page; "
        "a tenant that fails or whose run is already under way is reported and skipped (exit 1)."
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
        runs = job_runs_for_command(
            self,
            kind=JobRun.Kind.RECONCILE,
            schemas=self.schemas(schema),
            options={
                "mode": "full" if full else "incremental",
                "dry_run": dry_run,
                "triggered_by": "command",
            },
            requested_by="command",
        )
        if runs.not_ok:
            raise CommandError(f"not reconciled: {', '.join(runs.not_ok)}", returncode=1)
