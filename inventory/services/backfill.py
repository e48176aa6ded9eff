"""Rebuild inventory_balances from the ledger (the migration guide's `backfill:balances`).

Exact while other sessions insert: the work goes in chunks of items, and each chunk runs in its
own short transaction that first takes a SHARE ROW EXCLUSIVE lock on the ledger
(inventory.balances.balances_set_to_ledger, the owner of every balance write). That lock waits
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

from django.db import connection

from inventory.balances import balance_writers_lock, balances_set_to_ledger
from inventory.services.validation import balance_objects_require
from inventory.signals import balances_rebuilt

Progress = Callable[[int, int, str], None]


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
    """Rebuild the current tenant's balances from its ledger. Waits for a reconciliation run of
    this tenant to finish (and holds one back): both take inventory.balances' balance-writers
    lock, since a correction measured before a chunk and added after it would be wrong."""
    started = time.monotonic()
    result = BackfillResult(schema=connection.schema_name)
    balance_objects_require(schema=result.schema)
    with balance_writers_lock(wait=True):
        _backfill(result, chunk_items, progress)
    result.seconds = time.monotonic() - started
    balances_rebuilt.send(sender=balances_backfill, schema_name=result.schema)
    return result


def _backfill(result: BackfillResult, chunk_items: int, progress: Progress | None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM inventory_items")
        low, high = cursor.fetchone()
    if low is None:
        if progress:
            progress(0, 0, "no items: nothing to backfill")
        return
    bounds = list(range(low, high + 1, chunk_items))
    total = len(bounds)
    for n, lo in enumerate(bounds, start=1):
        hi = lo + chunk_items
        chunk = balances_set_to_ledger(item_lo=lo, item_hi=hi)
        result.ledger_rows += chunk.ledger_rows
        result.balance_rows_written += chunk.written
        result.balance_rows_removed += chunk.removed
        result.chunks = n
        if progress:
            progress(n, total, f"items {lo}-{hi - 1}: {result.ledger_rows} ledger rows read")
