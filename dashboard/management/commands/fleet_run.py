"""Start one operation over the fleet as a fleet run (dashboard/fleet_runs.py): the worker runs
one job per organisation, `--parallel` at a time, in slug order; the fleet page follows it."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from dashboard.fleet import fleet_select
from dashboard.fleet_runs import (
    FleetRunError,
    fleet_run_progress,
    fleet_run_start,
    fleet_run_wait,
)
from dashboard.models import FleetRun
from operations.registry import cli_requested_by


class Command(BaseCommand):
    help = "Run migrate, backfill, validate, reconcile or backup over the fleet (one job per org)."

    def add_arguments(self, parser):
        parser.add_argument("operation", choices=FleetRun.Operation.values)
        parser.add_argument("--only", choices=["needs-attention"], default=None)
        parser.add_argument("--org", action="append", default=[], metavar="SLUG")
        parser.add_argument("--parallel", type=int, default=2)
        parser.add_argument(
            "--wait",
            type=float,
            default=0,
            metavar="SECONDS",
            help="follow the run until it ends (the worker must be running), at most this long",
        )

    def handle(self, *args, operation, only, org, parallel, wait, **options):
        try:
            orgs, selection = fleet_select(only=only, slugs=org)
            run = fleet_run_start(
                operation=operation,
                orgs=orgs,
                parallel=parallel,
                selection=selection,
                requested_by=cli_requested_by(),
            )
        except FleetRunError as err:
            raise CommandError(str(err)) from None
        items = run.items.count()
        self.stdout.write(
            f"fleet run {run.pk}: {operation} over {items} "
            f"{'job' if items == 1 else 'jobs'} ({selection}), {parallel} at a time; "
            f"follow it on /fleet/runs/{run.pk}/"
        )
        if not wait:
            return
        run = fleet_run_wait(run.pk, timeout=wait)
        p = fleet_run_progress(run)
        self.stdout.write(
            f"fleet run {run.pk} {run.status}: {p['done']} done, {p['failed']} failed, "
            f"{p['queued'] + p['running']} waiting, {p['skipped']} skipped"
        )
        for item in run.items.filter(state="failed").select_related("organization"):
            self.stderr.write(
                f"{item.organization.slug if item.organization else 'platform'}: {item.message}"
            )
        if p["failed"] or run.status in FleetRun.OPEN:
            raise CommandError(f"fleet run {run.pk} did not finish cleanly")
