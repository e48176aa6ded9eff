"""Rebuild inventory_balances from the ledger (the migration guide's `backfill:balances`).

Exact while other sessions insert: the work goes in chunks of items, and each chunk runs in its
own short transaction that first takes a SHARE ROW EXCLUSIVE lock on the ledger
(inventory.balances.balances_set_to_ledger, the owner of every balance write). That lock waits
for in-flight inserts to commit and holds new ones back until the chunk commits, so the chunk's
SUM sees every committed row and no trigger delta can land between the SUM and the write.
Readers are never blocked; writers wait at most one chunk, and a chunk is small: at most
`chunk_items` items and about `chunk_rows` ledger rows. A tenant's 5·10^6 rows were one chunk of
≤ 500 items: every INSERT waited 19.4 s. A chunk's rows are scattered over the whole heap (an
item's history is spread in time), so its lock lasted about as long as reading them: chunks of
10,000 rows held postings up to 166 ms at 5·10^6 rows (`python -m bench --only scale`). Now a
chunk is 2,000 rows and is read once without the lock first (`_warm`), so the locked pass finds
its pages in shared buffers (tests/inventory/test_backfill_online.py, docs/PERFORMANCE.md).

An item with more than `chunk_rows` rows (a heavy item) takes no table lock: each of its balances
is set on its own, like inventory.balances.balance_set_to_ledger (the balance row locked, then
the key's ledger summed) except that the rows of transactions finished before the key's turn are
summed first without any lock, so a posting to that key waits only for the sum of the rows posted
meanwhile, and postings to other keys never wait. As one chunk, a 10^6-row item held every
posting of the tenant for 1.58 s. The item goes back to one locked chunk when its balance keys are
not exactly its ledger keys (a key without a balance row, a balance row no ledger row backs):
only the range statement creates rows with their last ledger id and removes orphans. Safe to re-run: it writes only rows whose value differs, and removes balance rows that no
ledger row backs. When it is done it sends inventory.signals.balances_rebuilt (reconciliation
closes discrepancies that are gone).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction

from inventory.balances import (
    RangeRecompute,
    balance_add_delta,
    balance_writers_lock,
    balances_set_to_ledger,
    qty_difference,
)
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
    heavy_items_by_key: int = 0  # heavy items set key by key, without the table lock
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return self.__dict__ | {"seconds": round(self.seconds, 3)}


CHUNK_ROWS = 2_000


def balances_backfill(
    *, chunk_items: int = 500, chunk_rows: int = CHUNK_ROWS, progress: Progress | None = None
) -> BackfillResult:
    """Rebuild the current tenant's balances from its ledger. Waits for a reconciliation run of
    this tenant to finish (and holds one back): both take inventory.balances' balance-writers
    lock, since a correction measured before a chunk and added after it would be wrong."""
    started = time.monotonic()
    result = BackfillResult(schema=connection.schema_name)
    balance_objects_require(schema=result.schema)
    with balance_writers_lock(wait=True):
        _backfill(result, chunk_items, chunk_rows, progress)
    result.seconds = time.monotonic() - started
    balances_rebuilt.send(sender=balances_backfill, schema_name=result.schema)
    return result


def _chunk_bounds(chunk_items: int, chunk_rows: int) -> list[tuple[int, int, bool]]:
    """Contiguous [lo, hi) item ranges covering every item id, each of at most chunk_items ids
    and chunk_rows ledger rows, with heavy=False; an item with more rows alone is (id, id + 1,
    True). Counted without a lock (an index-only scan of (item_id, id)): the counts only size
    the chunks."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM inventory_items")
        low, high = cursor.fetchone()
        if low is None:
            return []
        cursor.execute("SELECT item_id, count(*) FROM inventory_ledger GROUP BY 1 ORDER BY 1")
        counts = cursor.fetchall()
    bounds, lo, rows = [], low, 0
    for item_id, count in counts:
        while item_id - lo >= chunk_items:  # items without rows still get their orphans removed
            bounds.append((lo, lo + chunk_items, False))
            lo, rows = lo + chunk_items, 0
        if count > chunk_rows:
            if item_id > lo:
                bounds.append((lo, item_id, False))
            bounds.append((item_id, item_id + 1, True))
            lo, rows = item_id + 1, 0
            continue
        if rows and rows + count > chunk_rows:
            bounds.append((lo, item_id, False))
            lo, rows = item_id, 0
        rows += count
    while lo <= high:
        hi = min(lo + chunk_items, high + 1)
        bounds.append((lo, hi, False))
        lo = hi
    return bounds


def _heavy_item_keys(item_id: int) -> list[tuple[int, int | None, int]] | None:
    """The heavy item's ledger keys (location, lot, rows), read without a lock; None when its
    balance rows are not exactly those keys (then only the locked range statement is right)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT location_id, lot_id, count(*) FROM inventory_ledger WHERE item_id = %s "
            "GROUP BY 1, 2 ORDER BY 1, COALESCE(lot_id, 0)",
            [item_id],
        )
        keys = cursor.fetchall()
        cursor.execute(
            "SELECT location_id, lot_id FROM inventory_balances WHERE item_id = %s", [item_id]
        )
        balances = set(cursor.fetchall())
    return keys if balances == {(loc, lot) for loc, lot, _ in keys} else None


# A key's ledger split at a watermark W taken first: every transaction with an xid below W had
# finished by then, so the rows below W are final and summed without any lock; only the rows
# from W on (a few ms of postings) are summed with the balance row locked.
_WATERMARK = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"
_KEY_SUM = """
    SELECT COALESCE(sum(qty_canonical), 0), count(*) FROM inventory_ledger
     WHERE item_id = %s AND location_id = %s AND lot_id IS NOT DISTINCT FROM %s
       AND txid {op} %s::xid8"""


def _key_set(item_id: int, location_id: int, lot_id: int | None) -> tuple[bool, int]:
    """Set one balance to its ledger sum; postings to this key wait only for the sum of the rows
    since the watermark. Returns (written, rows summed)."""
    key = {"item_id": item_id, "location_id": location_id, "lot_id": lot_id}
    with connection.cursor() as cursor:
        cursor.execute(_WATERMARK)
        watermark = cursor.fetchone()[0]
        cursor.execute(_KEY_SUM.format(op="<"), [item_id, location_id, lot_id, watermark])
        settled, rows = cursor.fetchone()
    with transaction.atomic():
        # The balance row locked first (created at 0 if missing): a posting whose trigger has
        # run commits before the sum below reads it; one whose trigger has not adds its delta
        # after ours (inventory.balances.balance_set_to_ledger, with the history pre-summed).
        before = balance_add_delta(**key, delta=Decimal(0))
        with connection.cursor() as cursor:
            cursor.execute(_KEY_SUM.format(op=">="), [item_id, location_id, lot_id, watermark])
            recent, recent_rows = cursor.fetchone()
        ledger_sum = settled + recent
        if ledger_sum != before:
            balance_add_delta(**key, delta=qty_difference(ledger_sum, before))
    return ledger_sum != before, rows + recent_rows


def _heavy_item(item_id: int) -> RangeRecompute | None:
    """Set a heavy item's balances key by key, each in its own transaction (the balance row's
    lock: postings to other keys never wait); None when it must be one locked chunk."""
    keys = _heavy_item_keys(item_id)
    if keys is None:
        return None
    done = RangeRecompute(ledger_rows=0, written=0, removed=0)
    for location_id, lot_id, _ in keys:
        written, rows = _key_set(item_id, location_id, lot_id)
        done.ledger_rows += rows
        done.written += written
    return done


def _warm(lo: int, hi: int) -> None:
    """Read the chunk's ledger rows once without a lock, the way the locked statement reads them
    (the (item_id, id) index, then the heap): its pages are then in shared buffers and the
    locked pass finds them there. At 5·10^6 rows a 2,000-row chunk's locked SUM took 38 ms
    reading 2,000 heap pages, 6 ms after this (the lock is held about that long)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sum(qty_canonical) FROM inventory_ledger WHERE item_id >= %s AND item_id < %s",
            [lo, hi],
        )


def _backfill(
    result: BackfillResult, chunk_items: int, chunk_rows: int, progress: Progress | None
) -> None:
    bounds = _chunk_bounds(chunk_items, chunk_rows)
    if not bounds:
        if progress:
            progress(0, 0, "no items: nothing to backfill")
        return
    total = len(bounds)
    for n, (lo, hi, heavy) in enumerate(bounds, start=1):
        chunk = _heavy_item(lo) if heavy else None
        if chunk is None:
            if not heavy:
                _warm(lo, hi)
            chunk = balances_set_to_ledger(item_lo=lo, item_hi=hi)
        else:
            result.heavy_items_by_key += 1
        result.chunks = n
        result.ledger_rows += chunk.ledger_rows
        result.balance_rows_written += chunk.written
        result.balance_rows_removed += chunk.removed
        if progress:
            progress(n, total, f"items {lo}-{hi - 1}: {result.ledger_rows} ledger rows read")
