"""The discrepancy trend on the support queue: per run, over the last runs, how many differences
were found, how many were auto-corrected, and how many stayed open (new plus already queued) —
growing or shrinking at a glance. The queue's "Recent runs" table and the trend come from ONE
query of the newest runs (for one organisation, or all the visible ones)."""

from __future__ import annotations

from django.utils import timezone

from inventory.charts import Chart, line_chart
from reconciliation.models import ReconciliationRun

TREND_RUNS = 30
RECENT_RUNS = 15
# Dry and still-running runs are listed but not charted (a dry run's counts were not acted on, a
# running one's are not final): read a margin beyond the 30 so a few of them do not shorten it.
READ_RUNS = TREND_RUNS + RECENT_RUNS


def queue_runs(orgs, org_slug: str = "") -> tuple[list[ReconciliationRun], list[ReconciliationRun]]:
    """(the newest runs for the table, the charted runs oldest first)."""
    qs = ReconciliationRun.objects.filter(organization__in=orgs)
    if org_slug:
        qs = qs.filter(organization__slug=org_slug)
    runs = list(qs.select_related("organization").order_by("-started_at", "-id")[:READ_RUNS])
    charted = [r for r in runs if not r.dry_run and r.status != ReconciliationRun.Status.RUNNING][
        :TREND_RUNS
    ]
    charted.reverse()  # oldest on the left
    return runs[:RECENT_RUNS], charted


def trend_chart(runs: list[ReconciliationRun], *, all_orgs: bool) -> Chart:
    def label(r: ReconciliationRun) -> str:
        when = timezone.localtime(r.started_at).strftime("%m-%d %H:%M")
        return f"{r.organization.slug} {when}" if all_orgs else when

    return line_chart(
        "Discrepancies per reconciliation run",
        [label(r) for r in runs],
        [
            ("Found", [r.differences_found for r in runs]),
            ("Auto-corrected", [r.auto_corrected for r in runs]),
            ("Open", [r.opened + r.still_open for r in runs]),
        ],
        tick_labels=[timezone.localtime(r.started_at).strftime("%m-%d") for r in runs],
    )
