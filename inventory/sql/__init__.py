"""Versioned raw SQL for the tenant schema, loaded by migrations."""

from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent

# Every forward file, in the order the migrations apply them. All are idempotent, so running
# them again in this order repairs a schema (validate_migration --repair).
FORWARD = [
    "v1_inventory_balances.sql",
    "v1_ledger_append_only.sql",
    "v2_ledger_txid.sql",
    "v3_balance_function_pinned.sql",
]


def read_sql(name: str) -> str:
    return (SQL_DIR / name).read_text()
