from __future__ import annotations

from decimal import Decimal

from django.db import connection
from django_tenants.utils import schema_context

from reconciliation.services import reconciliation_run
from tests.inventory.helpers import make_catalog


def skew_and_reconcile(schema: str, *, by: str = "7", keys: int = 2):
    """Receipts in `schema`, then `keys` balance rows made wrong by `by`; a full run finds them."""
    with schema_context(schema):
        items, locations, _ = make_catalog(items=keys, prefix=schema[:2].upper())
        with connection.cursor() as cur:
            for n, item in enumerate(items):
                cur.execute(
                    "INSERT INTO inventory_ledger (item_id, location_id, qty_canonical, kind, "
                    "reference, occurred_at, recorded_at, recorded_by) "
                    "VALUES (%s, %s, 10, 'receipt', '', now(), now(), '')",
                    [item.id, locations[0].id],
                )
                cur.execute(
                    "UPDATE inventory_balances SET qty_canonical = qty_canonical + %s "
                    "WHERE item_id = %s",
                    [Decimal(by) * (n + 1), item.id],
                )
        return reconciliation_run(mode="full")
