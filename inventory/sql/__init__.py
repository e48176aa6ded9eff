"""Versioned raw SQL for the tenant schema, loaded by migrations."""

from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent

# Every forward file, in the order the migrations apply them. All are idempotent, so running
# them again in this order puts back exactly the current objects (repair_balances): v1 creates
# what is missing (and briefly its v1 function), v3 replaces the function with the pinned one,
# v4 widens the balance column, v5 adds the stock policy's settings row (an existing one is
# kept) and the function that checks it. One file alone is not the current state: re-running
# only v1 by hand would leave the v1 function in place.
FORWARD = [
    "v1_inventory_balances.sql",
    "v1_ledger_append_only.sql",
    "v2_ledger_txid.sql",
    "v3_balance_function_pinned.sql",
    "v4_balance_qty_wide.sql",
    "v5_stock_policy.sql",
]

# The migration guide's rollback ("Remove Balance Table"): trigger, function, table, nothing
# else. The ledger's append-only guard and its txid column stay (rollback_balances).
BALANCE_ROLLBACK = "v1_inventory_balances.reverse.sql"


def read_sql(name: str) -> str:
    return (SQL_DIR / name).read_text()
