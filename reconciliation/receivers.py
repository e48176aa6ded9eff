"""Reactions to what the inventory app reports. Reconciliation depends on inventory, never the
reverse: inventory sends signals, we listen here (connected in apps.py)."""

from __future__ import annotations

from django_tenants.utils import schema_context

from reconciliation.services.closing import discrepancies_close_resolved
from tenants.models import Organization


def close_resolved_after_backfill(sender, schema_name: str, **kwargs) -> None:
    """A backfill or repair rebuilt the balances: open discrepancies it made exact are closed
    now, not at the next run (the fleet would say "needs attention" until then)."""
    with schema_context(schema_name):
        org = Organization.objects.filter(schema_name=schema_name).first()
        if org is None:
            return
        discrepancies_close_resolved(
            organization=org,
            reason=f"the balance equals the ledger sum again (balances of {schema_name} rebuilt by the backfill)",
        )
