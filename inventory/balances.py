"""The one owner of inventory_balances outside the trigger: every write to the balance table
(corrections, approvals, the backfill's recompute) and every read that compares it with the
ledger (reconciliation's comparison, the closing check, validation's coverage check).

The trigger (inventory/sql/v3…, frozen like every merged SQL file) keeps the balances on each
insert; reconciliation (a shared app) and backfill/repair call the functions here instead of
writing a tenant table with SQL of their own. Every function works in the tenant schema the
connection is set to, except `balances_coverage`, which names its schema.

Lock order, the same for every writer: a caller's discrepancy rows first (reconciliation), then
balance rows in key order (item, location, lot): the order the trigger's upsert takes them.
`balance_writers_lock` is the per-schema advisory lock a reconciliation run holds from its
comparison to its corrections, and a backfill holds while it recomputes: a correction measured
before a backfill chunk and added after it would leave the balance off by that correction.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from decimal import Decimal, localcontext

from django.db import connection, transaction

# Wide enough for any difference of two NUMERIC(38,6) values: Python's default 28-digit
# context would round (quietly) a difference of balances above 10**22.
_WIDE_PRECISION = 40

# The upsert on the balance key, written once: `rows` is a VALUES or SELECT giving
# (item_id, location_id, lot_id, qty_canonical, last_ledger_id, updated_at); `update` what a
# conflict on (item_id, location_id, lot_key) sets.
_UPSERT = """
    INSERT INTO inventory_balances AS b (item_id, location_id, lot_id, qty_canonical, last_ledger_id, updated_at)
    {rows}
    ON CONFLICT (item_id, location_id, lot_key) DO UPDATE
       SET {update}"""

_ADD_DELTA = _UPSERT.format(
    rows="VALUES (%s, %s, %s, %s, 0, now())",
    update="qty_canonical = b.qty_canonical + EXCLUDED.qty_canonical, updated_at = now()\n"
    "    RETURNING b.qty_canonical",
)
_SET_TO_LEDGER = _UPSERT.format(
    rows="""SELECT item_id, location_id, lot_id, sum(qty_canonical), max(id), now()
      FROM inventory_ledger
     WHERE item_id >= %(lo)s AND item_id < %(hi)s
     GROUP BY item_id, location_id, lot_id
     ORDER BY item_id, location_id, COALESCE(lot_id, 0)""",
    update="""qty_canonical = EXCLUDED.qty_canonical,
           last_ledger_id = EXCLUDED.last_ledger_id,
           updated_at = EXCLUDED.updated_at
     WHERE b.qty_canonical IS DISTINCT FROM EXCLUDED.qty_canonical
        OR b.last_ledger_id IS DISTINCT FROM EXCLUDED.last_ledger_id""",
)
_DELETE_ORPHANS = """
    DELETE FROM inventory_balances b
     WHERE b.item_id >= %(lo)s AND b.item_id < %(hi)s
       AND NOT EXISTS (SELECT 1 FROM inventory_ledger l
                        WHERE l.item_id = b.item_id AND l.location_id = b.location_id
                          AND l.lot_id IS NOT DISTINCT FROM b.lot_id)
"""
_LEDGER_SUM = """
    SELECT COALESCE(sum(qty_canonical), 0) FROM inventory_ledger
     WHERE item_id = %s AND location_id = %s AND lot_id IS NOT DISTINCT FROM %s"""


class BalanceWritersBusy(Exception):
    """Another session holds this schema's balance-writers lock (a reconciliation run, a backfill)."""


def qty_difference(a: Decimal, b: Decimal | None) -> Decimal:
    """a - b (b None counts as 0), exact for any two balance-column values."""
    with localcontext(prec=_WIDE_PRECISION):
        return a - (b or Decimal(0))


# --- the per-schema lock ------------------------------------------------------------------------


def _lock_key() -> str:
    # The key reconciliation runs have always taken (operators may look for it in pg_locks).
    return f"reconcile:{connection.schema_name}"


@contextlib.contextmanager
def balance_writers_lock(*, wait: bool):
    """Hold this schema's balance-writers advisory lock (session level, so it spans the caller's
    transactions). `wait=False` raises BalanceWritersBusy at once when another session holds
    it; `wait=True` waits for it. Re-entrant within one session."""
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [_lock_key()])
        else:
            cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [_lock_key()])
            if not cursor.fetchone()[0]:
                raise BalanceWritersBusy(connection.schema_name)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [_lock_key()])


# --- writes -------------------------------------------------------------------------------------


def balance_add_delta(*, item_id: int, location_id: int, lot_id: int | None, delta) -> Decimal:
    """Add `delta` to one balance (creating the row at `delta` when missing) and return the new
    balance. The row stays locked until the caller's transaction ends: a delta of 0 is how a
    caller locks a key before reading its ledger sum."""
    with connection.cursor() as cursor:
        cursor.execute(_ADD_DELTA, [item_id, location_id, lot_id, delta])
        return cursor.fetchone()[0]


def balance_set_to_ledger(
    *, item_id: int, location_id: int, lot_id: int | None
) -> tuple[Decimal, Decimal]:
    """Set one balance to its ledger sum as it is now; returns (balance before, ledger sum).
    Locks the balance row first (creating it at zero if missing): inserters on this key wait
    for the caller's transaction, and the sum read after the lock sees every committed row.
    Run it inside a transaction (the lock is the guarantee)."""
    key = {"item_id": item_id, "location_id": location_id, "lot_id": lot_id}
    before = balance_add_delta(**key, delta=Decimal(0))
    with connection.cursor() as cursor:
        cursor.execute(_LEDGER_SUM, [item_id, location_id, lot_id])
        ledger_sum = cursor.fetchone()[0]
    if ledger_sum != before:
        balance_add_delta(**key, delta=qty_difference(ledger_sum, before))
    return before, ledger_sum


@dataclass
class RangeRecompute:
    ledger_rows: int
    written: int
    removed: int


def balances_set_to_ledger(*, item_lo: int, item_hi: int) -> RangeRecompute:
    """Set every balance of items item_lo <= id < item_hi to its ledger sum, and remove balance
    rows no ledger row backs, in one short transaction. Exact while other sessions insert: the
    SHARE ROW EXCLUSIVE lock on the ledger waits for in-flight inserts to commit and holds new
    ones back until the commit, so the SUM sees every committed row and no trigger delta can
    land between the SUM and the write. Writes only rows whose value differs."""
    bounds = {"lo": item_lo, "hi": item_hi}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE inventory_ledger IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(
            "SELECT count(*) FROM inventory_ledger WHERE item_id >= %(lo)s AND item_id < %(hi)s",
            bounds,
        )
        ledger_rows = cursor.fetchone()[0]
        cursor.execute(_SET_TO_LEDGER, bounds)
        written = cursor.rowcount
        cursor.execute(_DELETE_ORPHANS, bounds)
        return RangeRecompute(ledger_rows, written, cursor.rowcount)


# --- reads that compare the balances with the ledger --------------------------------------------

_SUMS_FULL = """
    SELECT item_id, location_id, COALESCE(lot_id, 0) AS lot_key, min(lot_id) AS lot_id, sum(qty_canonical) AS qty
      FROM inventory_ledger GROUP BY 1, 2, 3"""
_SUMS_INCREMENTAL = """
    SELECT l.item_id, l.location_id, t.lot_key, min(l.lot_id) AS lot_id, sum(l.qty_canonical) AS qty
      FROM (SELECT DISTINCT item_id, location_id, COALESCE(lot_id, 0) AS lot_key
              FROM inventory_ledger WHERE txid >= %(since)s::text::xid8) t
      JOIN inventory_ledger l
        ON l.item_id = t.item_id AND l.location_id = t.location_id AND COALESCE(l.lot_id, 0) = t.lot_key
     GROUP BY 1, 2, 3"""
# Touched keys (rows since `since`): checkpoint + the rows since the checkpoint. Both reads go
# through the txid index; no touched key's older history is read.
_SUMS_FROM_CHECKPOINT = """
    SELECT t.item_id, t.location_id, t.lot_key, t.lot_id, COALESCE(c.qty, 0) + t.qty_new AS qty
      FROM (SELECT item_id, location_id, COALESCE(lot_id, 0) AS lot_key, min(lot_id) AS lot_id,
                   COALESCE(sum(qty_canonical) FILTER (WHERE txid >= %(checkpoint)s::text::xid8), 0)
                       AS qty_new,
                   bool_or(txid >= %(since)s::text::xid8) AS touched
              FROM inventory_ledger
             WHERE txid >= LEAST(%(since)s, %(checkpoint)s)::text::xid8
             GROUP BY 1, 2, 3) t
      LEFT JOIN inventory_ledger_checkpoint c
        ON c.item_id = t.item_id AND c.location_id = t.location_id AND c.lot_key = t.lot_key
     WHERE t.touched"""
# The checkpoint: per key, the sum of the rows of transactions below `upto` (all finished).
_CHECKPOINT_REBUILD = """
    INSERT INTO inventory_ledger_checkpoint (item_id, location_id, lot_key, qty)
    SELECT item_id, location_id, COALESCE(lot_id, 0), sum(qty_canonical)
      FROM inventory_ledger WHERE txid < %(upto)s::text::xid8 GROUP BY 1, 2, 3"""
_CHECKPOINT_ADVANCE = """
    INSERT INTO inventory_ledger_checkpoint AS c (item_id, location_id, lot_key, qty)
    SELECT item_id, location_id, COALESCE(lot_id, 0), sum(qty_canonical)
      FROM inventory_ledger
     WHERE txid >= %(from)s::text::xid8 AND txid < %(upto)s::text::xid8
     GROUP BY 1, 2, 3
    ON CONFLICT (item_id, location_id, lot_key) DO UPDATE SET qty = c.qty + EXCLUDED.qty"""
_CHECKPOINT_AT = """
    INSERT INTO inventory_ledger_checkpoint_at (one, upto_xid, ledger_filenode)
    VALUES (true, %(upto)s::text::xid8, pg_relation_filenode('inventory_ledger'))
    ON CONFLICT (one) DO UPDATE
       SET upto_xid = EXCLUDED.upto_xid, ledger_filenode = EXCLUDED.ledger_filenode"""
# One statement, so one snapshot: the count and the differences can never disagree, and a
# balance and its ledger rows are seen together (the trigger writes both in one transaction).
_COMPARE = """
    WITH sums AS ({sums}),
    joined AS (
        SELECT COALESCE(s.item_id, b.item_id) AS item_id, COALESCE(s.location_id, b.location_id) AS location_id,
               COALESCE(s.lot_id, b.lot_id) AS lot_id, s.qty AS ledger_sum, b.qty_canonical AS balance,
               s.item_id IS NULL AS orphan
          FROM sums s
          {join} inventory_balances b
            ON b.item_id = s.item_id AND b.location_id = s.location_id AND b.lot_key = s.lot_key),
    diffs AS (
        SELECT j.*, i.sku, loc.code AS location_code, lot.code AS lot_code, i.name AS item_name, i.unit
          FROM joined j
          JOIN inventory_items i ON i.id = j.item_id
          JOIN inventory_locations loc ON loc.id = j.location_id
          LEFT JOIN inventory_lots lot ON lot.id = j.lot_id
         WHERE j.ledger_sum IS DISTINCT FROM j.balance)
    SELECT (SELECT count(*) FROM joined),
           (SELECT COALESCE(json_agg(json_build_array(item_id, location_id, lot_id, ledger_sum::text, balance::text,
                                                      orphan, sku, location_code, lot_code, item_name, unit)
                                     ORDER BY item_id, location_id, COALESCE(lot_id, 0)), '[]'::json)
              FROM diffs)"""


@dataclass
class Comparison:
    """Keys whose balance differs from their ledger sum, as one snapshot saw them. Each row:
    (item_id, location_id, lot_id, ledger_sum, balance or None, orphan, sku, location_code,
    lot_code, item_name, unit), in key order."""

    rows: list[tuple]
    keys_checked: int
    watermark: int  # every transaction unfinished at the comparison has an xid >= this


def balances_compare(*, since: int | None = None) -> Comparison:
    """Compare every balance with its ledger sum (or, with `since`, only the keys with ledger
    rows from transactions >= that xid). Runs in its own (sub)transaction: a tenant whose tables
    are missing fails here without leaving the caller's transaction aborted.

    Incremental, with a ledger checkpoint (below): a touched key's ledger sum is its checkpoint
    plus its rows since the checkpoint, so the cost follows the new rows, not the history
    (1.59 s after 1,000 new rows at 5·10^6 when it re-summed each touched key). Exact: the
    checkpoint is the sum of rows of finished transactions only. Each comparison then moves the
    checkpoint up to its watermark; a full one rebuilds it."""
    incremental = since is not None
    with transaction.atomic(), connection.cursor() as cursor:
        # Taken before the comparison: every transaction not finished by now has an xid >= this,
        # so the next incremental run will look at its rows, whenever it commits.
        cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        watermark = cursor.fetchone()[0]
        # One checkpoint writer at a time (the row lock; a first checkpoint is an upsert).
        cursor.execute(
            "SELECT upto_xid::text::bigint,"
            "       ledger_filenode = pg_relation_filenode('inventory_ledger')"
            "  FROM inventory_ledger_checkpoint_at FOR UPDATE"
        )
        at = cursor.fetchone()
        # A checkpoint of the ledger's previous file (truncated, restored) no longer counts.
        checkpoint = at[0] if at and at[1] else None
        if not incremental:
            sums = _SUMS_FULL
        elif checkpoint is not None:
            sums = _SUMS_FROM_CHECKPOINT
        else:
            sums = _SUMS_INCREMENTAL
        sql = _COMPARE.format(sums=sums, join="LEFT JOIN" if incremental else "FULL OUTER JOIN")
        cursor.execute(sql, {"since": since, "checkpoint": checkpoint})
        keys_checked, rows = cursor.fetchone()
        if not incremental:
            cursor.execute("DELETE FROM inventory_ledger_checkpoint")
            cursor.execute(_CHECKPOINT_REBUILD, {"upto": watermark})
        elif checkpoint is not None and checkpoint < watermark:
            cursor.execute(_CHECKPOINT_ADVANCE, {"from": checkpoint, "upto": watermark})
        if not incremental or checkpoint is not None:
            cursor.execute(_CHECKPOINT_AT, {"upto": watermark})
    if isinstance(rows, str):
        rows = json.loads(rows)
    return Comparison(
        rows=[
            (
                r[0],
                r[1],
                r[2],
                Decimal(r[3]) if r[3] is not None else Decimal(0),
                Decimal(r[4]) if r[4] is not None else None,
                r[5],
                r[6],
                r[7],
                r[8] or "",
                r[9] or "",
                r[10] or "",
            )
            for r in rows
        ],
        keys_checked=keys_checked,
        watermark=watermark,
    )


_KEYS_NOW = """
    SELECT k.id,
           (SELECT sum(l.qty_canonical) FROM inventory_ledger l
             WHERE l.item_id = k.item_id AND l.location_id = k.location_id
               AND l.lot_id IS NOT DISTINCT FROM k.lot_id) AS ledger_sum,
           (SELECT b.qty_canonical FROM inventory_balances b
             WHERE b.item_id = k.item_id AND b.location_id = k.location_id
               AND b.lot_key = COALESCE(k.lot_id, 0)) AS balance
      FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])
           AS k(id, item_id, location_id, lot_id)"""


def balances_versus_ledger(keys: list[tuple]) -> dict:
    """For each (tag, item_id, location_id, lot_id): tag → (ledger sum or None, balance or None),
    read by one statement (under READ COMMITTED: everything committed before it)."""
    if not keys:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_KEYS_NOW, [list(column) for column in zip(*keys, strict=True)])
        return {tag: (ledger_sum, balance) for tag, ledger_sum, balance in cursor.fetchall()}


@dataclass
class Coverage:
    ledger_rows: int
    ledger_keys: int
    ledger_total: Decimal
    balance_keys: int
    balance_total: Decimal


def balances_coverage(*, schema: str) -> Coverage:
    """Balances cover the ledger: ledger rows, ledger keys and their grand total against balance
    rows and theirs. One statement (one snapshot; the trigger writes a balance in its ledger
    rows' transaction, so concurrent postings cannot make it differ). A hash aggregate over the
    ledger: 31-43 ms at 100,000 rows, 240-345 ms at 1,000,000 (docs/OPERATIONS.md)."""
    q = connection.ops.quote_name(schema)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT (SELECT count(*) FROM {q}.inventory_ledger),
                   k.keys, COALESCE(k.total, 0),
                   b.keys, COALESCE(b.total, 0)
              FROM (SELECT count(*) AS keys, sum(s) AS total
                      FROM (SELECT sum(qty_canonical) AS s FROM {q}.inventory_ledger
                             GROUP BY item_id, location_id, lot_id) g) k,
                   (SELECT count(*) AS keys, sum(qty_canonical) AS total
                      FROM {q}.inventory_balances) b"""
        )
        return Coverage(*cursor.fetchone())


def balance_qty_limit() -> Decimal | None:
    """Magnitude a balance must stay below (10**(precision - scale) of qty_canonical), or None
    when there is no balance table (rolled back) or the column is unbounded."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT numeric_precision, numeric_scale FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'inventory_balances' "
            "AND column_name = 'qty_canonical'"
        )
        found = cursor.fetchone()
    if not found or found[0] is None:
        return None
    return Decimal(10) ** (found[0] - found[1])
