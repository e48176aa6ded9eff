from django.core.management.base import CommandError

from inventory.management.commands._base import TenantCommand
from operations.jobs import job_run_create
from operations.models import JobRun
from reconciliation.tasks import reconcile_tenant


class Command(TenantCommand):
    help = (
        "Compare every balance with the sum of its ledger, per tenant. Differences under the tolerance "
        "are corrected; larger ones are queued for review; open ones whose difference is gone are "
        "closed. Incremental unless --full. Each tenant's run is recorded as a job, as from the page."
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
            try:
                # The same JobRun the page's button records, so the fleet and the runbook see
                # it (and a run already under way for this schema refuses a second one).
                job = job_run_create(
                    kind=JobRun.Kind.RECONCILE,
                    schema_name=name,
                    requested_by="command",
                    params={"mode": mode, "dry_run": dry_run},
                )
                r = reconcile_tenant(name, mode, job.id, "command", dry_run=dry_run)
            except Exception as err:  # one broken organisation must not stop the others
                self.stderr.write(f"{name}: failed, {type(err).__name__}: {err}".strip())
                failed.append(name)
                continue
            if not r:  # the job runner did not run it (its lock is held elsewhere)
                job.refresh_from_db()
                self.stderr.write(f"{name}: not run, {job.error or job.status}")
                failed.append(name)
                continue
            label = f"{r['mode']}{' (dry run)' if dry_run else ''}"
            would = " (would be)" if dry_run else ""
            self.stdout.write(
                f"{name}: {label}: {r['keys_checked']} keys checked, {r['differences']} differences, "
                f"{r['auto_corrected']} auto-corrected, {r['opened']} opened{would} "
                f"({r['still_open']} still open, {r['kept_dismissed']} kept dismissed, "
                f"{r['auto_closed']} auto-closed), {r['seconds']:.2f}s"
            )
        if failed:
            raise CommandError(f"not reconciled: {', '.join(failed)}")
