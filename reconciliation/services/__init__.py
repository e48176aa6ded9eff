"""Reconciliation services: runs (run.py), closing what the ledger no longer contradicts
(closing.py) and the review actions (review.py). Imported from here by pages, tasks, commands."""

from reconciliation.services.closing import discrepancies_close_resolved
from reconciliation.services.review import (
    ResolutionError,
    discrepancies_dismiss,
    discrepancy_approve,
    discrepancy_dismiss,
)
from reconciliation.services.run import (
    Difference,
    ReconciliationBusy,
    reconciliation_run,
    reconciliation_summary,
)

__all__ = [
    "Difference",
    "ReconciliationBusy",
    "ResolutionError",
    "discrepancies_close_resolved",
    "discrepancies_dismiss",
    "discrepancy_approve",
    "discrepancy_dismiss",
    "reconciliation_run",
    "reconciliation_summary",
]
