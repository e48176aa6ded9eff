"""The no-negative stock policy of an organisation (issue 14).

The rule itself is in the database, in the balance trigger (sql/v5_stock_policy.sql): with the
policy on, a statement that lowers an (item, location, lot) balance below zero fails whole with
SQLSTATE 23514 and constraint `inventory_no_negative_stock`, its DETAIL a JSON list of the keys.
Checking there is exact and race-free (the upsert holds the balance rows' locks, in key order)
and costs no round trip. This module reads and sets the policy (a one-row table in the tenant's
own schema, which the trigger reads) and turns the database's refusal into `InsufficientStock`,
a 409 naming each key with its balance and shortfall.
"""

from __future__ import annotations

import json
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from inventory.services.errors import InventoryError

CHECK_VIOLATION = "23514"
CONSTRAINT = "inventory_no_negative_stock"


class InsufficientStock(InventoryError):
    """The posting would leave balances below zero while the policy forbids it; nothing was
    written. `shortfalls`: one dict per key (item, location, lot codes, balance, shortfall)."""

    status = 409
    code = "insufficient_stock"

    def __init__(self, shortfalls: list[dict]):
        keys = "; ".join(
            f"{s['item']} at {s['location']}"
            + (f" lot {s['lot']}" if s["lot"] else "")
            + f": balance {s['balance']}, short by {s['shortfall']}"
            for s in shortfalls
        )
        super().__init__(
            f"Not enough stock; nothing was posted. {keys}.",
            {"entries": [f"negative stock is not allowed: {keys}"]},
        )
        self.shortfalls = shortfalls

    def as_dict(self) -> dict:
        return super().as_dict() | {"shortfalls": self.shortfalls}


def policy_get() -> bool:
    """Whether this schema's organisation refuses negative stock (a missing row means off, as
    the trigger reads it)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT no_negative_stock FROM inventory_settings WHERE id")
        row = cursor.fetchone()
    return bool(row and row[0])


def policy_set(*, no_negative_stock: bool, by: str = "") -> None:
    """Turn the policy on or off for the current schema. Upsert: the repair or a hand-made
    schema may have lost the row. Later postings see it at once (the trigger reads it per
    statement); balances already negative stay as they are."""
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO inventory_settings (id, no_negative_stock, updated_at, updated_by)
               VALUES (true, %s, %s, %s)
               ON CONFLICT (id) DO UPDATE
                  SET no_negative_stock = EXCLUDED.no_negative_stock,
                      updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by""",
            [bool(no_negative_stock), timezone.now(), by[:200]],
        )


def _diag(exc: BaseException):
    """psycopg's error of a Django database error (or the psycopg error itself)."""
    for err in (exc, exc.__cause__):
        if err is not None and getattr(err, "sqlstate", None):
            return err
    return None


def is_refusal(exc: BaseException) -> bool:
    err = _diag(exc)
    return (
        err is not None
        and err.sqlstate == CHECK_VIOLATION
        and getattr(err.diag, "constraint_name", None) == CONSTRAINT
    )


def refusal_from(exc: BaseException, rows=None) -> InsufficientStock | None:
    """InsufficientStock for the trigger's refusal, else None. `rows`: the posting's resolved
    (item, location, lot) objects, to name the keys without a query (the caller's transaction
    may be aborted); keys not among them are looked up."""
    if not is_refusal(exc):
        return None
    keys = json.loads(_diag(exc).diag.message_detail or "[]")
    items, locations, lots = {}, {}, {}
    for item, location, lot in rows or ():
        items[item.id], locations[location.id] = item.sku, location.code
        if lot is not None:
            lots[lot.id] = lot.code
    missing = [k for k in keys if k["item_id"] not in items or k["location_id"] not in locations]
    missing += [k for k in keys if k["lot_id"] is not None and k["lot_id"] not in lots]
    if missing:
        _lookup_codes(missing, items, locations, lots)
    return InsufficientStock(
        [
            {
                "item": items.get(k["item_id"], str(k["item_id"])),
                "location": locations.get(k["location_id"], str(k["location_id"])),
                "lot": lots.get(k["lot_id"]) if k["lot_id"] is not None else None,
                "balance": _qty(k["balance"]),
                "shortfall": _qty(k["shortfall"]),
            }
            for k in keys
        ]
    )


def _lookup_codes(keys, items, locations, lots) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT 'item', id, sku FROM inventory_items WHERE id = ANY(%s)
               UNION ALL SELECT 'location', id, code FROM inventory_locations WHERE id = ANY(%s)
               UNION ALL SELECT 'lot', id, code FROM inventory_lots WHERE id = ANY(%s)""",
            [
                [k["item_id"] for k in keys],
                [k["location_id"] for k in keys],
                [k["lot_id"] for k in keys if k["lot_id"] is not None],
            ],
        )
        for what, pk, code in cursor.fetchall():
            {"item": items, "location": locations, "lot": lots}[what][pk] = code


def _qty(text: str) -> str:
    from inventory.selectors import fmt_qty

    return fmt_qty(Decimal(text))


# --- validate_migration -------------------------------------------------------------------


def objects_problem(cursor, schema: str) -> str | None:
    """What is wrong with the policy's objects in `schema` (None: in place): the settings table
    with its one row, and a balance function that reads it (v5)."""
    cursor.execute(
        """SELECT to_regclass(quote_ident(%s) || '.inventory_settings') IS NOT NULL,
                  (SELECT p.prosrc LIKE '%%inventory_settings%%'
                                AND p.prosrc LIKE '%%inventory_no_negative_stock%%'
                     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE n.nspname = %s AND p.proname = 'update_inventory_balance')""",
        [schema, schema],
    )
    table, function_checks = cursor.fetchone()
    if not table:
        return f"{schema}.inventory_settings is missing"
    cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(schema)}.inventory_settings")
    rows = cursor.fetchone()[0]
    if rows != 1:
        return f"{schema}.inventory_settings has {rows} rows, not 1"
    if not function_checks:
        return "update_inventory_balance() does not check the no-negative policy (before v5)"
    return None
