"""Put the balance objects back (repair) or remove them (the guide's rollback), in the tenant
schema the connection is set to.

Why a repair of its own: `migrate_schemas` consults django_migrations, so after the guide's
rollback SQL by hand (or a lost trigger) it reports success and changes nothing. The repair reads
the catalog instead, re-runs every forward SQL file in migration order (all idempotent; that
order ends at the current definitions: pinned v3 function, NUMERIC(38,6) balances), switches the
triggers back on, then rebuilds the balances from the ledger (the table may come back empty).

Why a rollback of its own: migrating inventory back to 0001 also reverses 0003 and 0004 (the
ledger's append-only guard and its txid column). The guide's rollback drops three objects only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection, transaction

from inventory.balances import balance_writers_lock
from inventory.services.backfill import BackfillResult, Progress, balances_backfill
from inventory.services.validation import balance_objects_by_schema, balance_objects_require
from inventory.sql import BALANCE_ROLLBACK, FORWARD, read_sql

_ENABLE = """
    ALTER TABLE inventory_ledger ENABLE TRIGGER inventory_ledger_balance_trigger;
    ALTER TABLE inventory_ledger ENABLE TRIGGER inventory_ledger_no_update_delete;
    ALTER TABLE inventory_ledger ENABLE TRIGGER inventory_ledger_no_truncate;
"""


@dataclass
class RepairResult:
    schema: str
    restored: list[str] = field(default_factory=list)
    backfill: BackfillResult | None = None

    def as_dict(self) -> dict:
        return {
            "schema": self.schema,
            "restored": self.restored,
            "backfill": self.backfill.as_dict() if self.backfill else None,
        }

    @property
    def summary(self) -> str:
        put_back = ", ".join(self.restored) if self.restored else "nothing missing"
        rows = self.backfill.balance_rows_written if self.backfill else 0
        return f"put back: {put_back}; {rows} balance rows written"


def _run_in_schema(schema: str, sql: list[str]) -> None:
    with transaction.atomic(), connection.cursor() as cur:
        # DDL on the ledger refuses to run with deferred FK checks pending in the transaction
        # (only ever the case inside a caller's transaction, e.g. a test); check them now.
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        # What the migrations run with (quoted only where needed, as django-tenants writes it):
        # the function's SET search_path FROM CURRENT pins exactly this.
        cur.execute(
            "SELECT set_config('search_path', quote_ident(%s) || ', public', true)", [schema]
        )
        for statement in sql:
            cur.execute(statement)


def balance_objects_restore() -> list[str]:
    """Put back the current balance objects (and the ledger guard) where missing; returns the
    names of the guide's objects that were missing. Keeps every existing row."""
    schema = connection.schema_name
    before = balance_objects_require(schema=schema, table=False)
    _run_in_schema(schema, [read_sql(name) for name in FORWARD] + [_ENABLE])
    return before.missing + (
        [] if before.trigger_enabled or not before.trigger else ["trigger enabled"]
    )


def balances_repair(*, progress: Progress | None = None) -> RepairResult:
    """The one repair: current objects back, then balances rebuilt from the ledger. The backfill
    waits for a reconciliation run of the tenant to finish (the balance-writers lock of
    inventory.balances) and sends inventory.signals.balances_rebuilt once the balances are exact."""
    result = RepairResult(schema=connection.schema_name)
    # Held from the restore to the end of the backfill (which takes it again: re-entrant): a
    # run must not compare a table just put back empty with the ledger and "correct" it.
    with balance_writers_lock(wait=True):
        if progress:
            progress(0, 1, "putting back the balance table, function and trigger")
        result.restored = balance_objects_restore()
        result.backfill = balances_backfill(progress=progress)
    return result


def balances_rollback() -> list[str]:
    """The guide's "Remove Balance Table": drop the trigger, the function and the table of this
    schema, nothing else. django_migrations still records 0002, so the fleet and the runbook show
    the objects as missing and offer the repair. Returns what was dropped."""
    schema = connection.schema_name
    balance_objects_require(schema=schema, table=False)
    present = balance_objects_by_schema([schema])[schema]
    _run_in_schema(schema, [read_sql(BALANCE_ROLLBACK)])
    return [
        name
        for name, there in (
            ("inventory_ledger_balance_trigger", present.trigger),
            ("update_inventory_balance()", present.function),
            ("inventory_balances", present.table),
        )
        if there
    ]
