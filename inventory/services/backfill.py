"""Rebuild inventory_balances from the ledger (the migration guide's `backfill:balances`).

Exact while other sessions insert: the work goes in chunks of items, and each chunk runs in its
own short transaction that first takes a SHARE ROW EXCLUSIVE lock on the ledger. That lock waits
for in-flight inserts to commit and holds new ones back until the chunk commits, so the chunk's
SUM sees every committed row and no trigger delta can land between the SUM and the write.
Readers are never blocked; writers wait at most one chunk. Safe to re-run: it writes only rows
whose value differs, and removes balance rows that no ledger row backs. When it is done it sends
inventory.signals.balances_rebuilt (reconciliation closes discrepancies that are gone).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, transaction

from inventory.services.validation import balance_objects_require
from inventory.signals import balances_rebuilt

Progress = Callable[[int, int, str], None]

_UPSERT = """
    INSERT INTO inventory_balances AS b (item_id, location_id, lot_id, qty_canonical, last_ledger_id, updated_at)
    SELECT item_id, location_id, lot_id, sum(qty_canonical), max(id), now()
      FROM inventory_ledger
     WHERE item_id >= %(lo)s AND item_id < %(hi)s
     GROUP BY item_id, location_id, lot_id
     ORDER BY item_id, location_id, COALESCE(lot_id, 0)
    ON CONFLICT (item_id, location_id, lot_key) DO UPDATE
       SET qty_canonical = EXCLUDED.qty_canonical,
           last_ledger_id = EXCLUDED.last_ledger_id,
           updated_at = EXCLUDED.updated_at
     WHERE b.qty_canonical IS DISTINCT FROM EXCLUDED.qty_canonical
        OR b.last_ledger_id IS DISTINCT FROM EXCLUDED.last_ledger_id
"""
_DELETE_ORPHANS = """
    DELETE FROM inventory_balances b
     WHERE b.item_id >= %(lo)s AND b.item_id < %(hi)s
       AND NOT EXISTS (SELECT 1 FROM inventory_ledger l
                        WHERE l.item_id = b.item_id AND l.location_id = b.location_id
                          AND l.lot_id IS NOT DISTINCT FROM b.lot_id)
"""


@dataclass
class BackfillResult:
    schema: str
    ledger_rows: int = 0
    balance_rows_written: int = 0
    balance_rows_removed: int = 0
    chunks: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return self.__dict__ | {"seconds": round(self.seconds, 3)}


def balances_backfill(
    *, chunk_items: int = 500, progress: Progress | None = None
) -> BackfillResult:
    """Rebuild the current tenant's balances from its ledger."""
    started = time.monotonic()
    result = BackfillResult(schema=connection.schema_name)
    balance_objects_require(schema=result.schema)
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM inventory_items")
        low, high = cursor.fetchone()
    if low is None:
        if progress:
            progress(0, 0, "no items: nothing to backfill")
        result.seconds = time.monotonic() - started
        balances_rebuilt.send(sender=balances_backfill, schema_name=result.schema)
        return result
    bounds = list(range(low, high + 1, chunk_items))
    total = len(bounds)
    for n, lo in enumerate(bounds, start=1):
        hi = lo + chunk_items
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("LOCK TABLE inventory_ledger IN SHARE ROW EXCLUSIVE MODE")
            cursor.execute(
                "SELECT count(*) FROM inventory_ledger WHERE item_id >= %(lo)s AND item_id < %(hi)s",
                {"lo": lo, "hi": hi},
            )
            result.ledger_rows += cursor.fetchone()[0]
            cursor.execute(_UPSERT, {"lo": lo, "hi": hi})
            result.balance_rows_written += cursor.rowcount
            cursor.execute(_DELETE_ORPHANS, {"lo": lo, "hi": hi})
            result.balance_rows_removed += cursor.rowcount
        result.chunks = n
        if progress:
            progress(n, total, f"items {lo}-{hi - 1}: {result.ledger_rows} ledger rows read")
    result.seconds = time.monotonic() - started
    balances_rebuilt.send(sender=balances_backfill, schema_name=result.schema)
    return result
