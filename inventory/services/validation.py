"""The migration guide's `validate:migration`: is everything the balance migration creates there,
in a given schema, and switched on? Reads the catalogs only; changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection

BALANCE_INDEXES = {
    "inventory_balances_key_uniq": "unique (item_id, location_id, lot_key)",
    "inventory_balances_location_idx": "lookup by location",
    "inventory_balances_lot_idx": "lookup by lot",
}
LEDGER_INDEXES = {"inventory_ledger_key_idx": "ledger history per key"}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'✅' if self.ok else '❌'} {self.name}" + ("" if self.ok else f" — {self.detail}")


@dataclass
class ValidationReport:
    schema: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def as_dict(self) -> dict:
        return {
            "schema": self.schema,
            "ok": self.ok,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }


def _one(cursor, sql: str, params: list) -> tuple | None:
    cursor.execute(sql, params)
    return cursor.fetchone()


def migration_validate(*, schema: str) -> ValidationReport:
    report = ValidationReport(schema=schema)
    add = report.checks.append
    with connection.cursor() as cur:
        row = _one(cur, "SELECT to_regclass('public.organizations')", [])
        add(
            Check(
                "Organizations table exists", row[0] is not None, "public.organizations is missing"
            )
        )

        row = _one(cur, "SELECT to_regclass(%s)", [f'"{schema}".inventory_balances'])
        has_table = row[0] is not None
        add(
            Check(
                "Inventory balances table exists",
                has_table,
                f"{schema}.inventory_balances is missing",
            )
        )

        trig = _one(
            cur,
            """
            SELECT t.tgenabled, t.tgtype, p.proname, pn.nspname
              FROM pg_trigger t
              JOIN pg_class c ON c.oid = t.tgrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
              JOIN pg_proc p ON p.oid = t.tgfoid
              JOIN pg_namespace pn ON pn.oid = p.pronamespace
             WHERE n.nspname = %s AND c.relname = 'inventory_ledger'
               AND t.tgname = 'inventory_ledger_balance_trigger'""",
            [schema],
        )
        add(
            Check(
                "Balance trigger exists",
                trig is not None,
                "inventory_ledger_balance_trigger is missing on inventory_ledger",
            )
        )
        if trig is not None:
            enabled, tgtype, proname, fn_schema = trig
            add(
                Check(
                    "Balance trigger is enabled",
                    enabled in ("O", "A"),
                    f"the trigger is disabled (tgenabled={enabled!r}); run ALTER TABLE inventory_ledger ENABLE TRIGGER inventory_ledger_balance_trigger",
                )
            )
            # tgtype bit 0: row-level; bit 2: INSERT. We expect AFTER INSERT FOR EACH STATEMENT.
            add(
                Check(
                    "Balance trigger fires after each insert statement",
                    (tgtype & 1) == 0 and (tgtype & 4) != 0,
                    f"unexpected trigger type {tgtype}",
                )
            )
            add(
                Check(
                    "Balance trigger calls this schema's function",
                    proname == "update_inventory_balance" and fn_schema == schema,
                    f"it calls {fn_schema}.{proname}()",
                )
            )

        row = _one(
            cur,
            """
            SELECT p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = %s AND p.proname = 'update_inventory_balance'""",
            [schema],
        )
        add(
            Check(
                "Balance function exists",
                row is not None,
                f"{schema}.update_inventory_balance() is missing",
            )
        )
        if row is not None:
            pinned = [c.split("=", 1)[1] for c in (row[0] or []) if c.startswith("search_path=")]
            first = pinned[0].split(",")[0].strip().strip('"') if pinned else None
            add(
                Check(
                    "Balance function writes this schema's balances",
                    first == schema,
                    f"its search_path is {pinned[0] if pinned else 'not pinned'}; re-run migrate_schemas",
                )
            )

        cur.execute(
            """
            SELECT c.relname, i.indisunique, i.indisvalid
              FROM pg_index i
              JOIN pg_class c ON c.oid = i.indexrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = %s""",
            [schema],
        )
        indexes = {name: (unique, valid) for name, unique, valid in cur.fetchall()}
        missing = [n for n in [*BALANCE_INDEXES, *LEDGER_INDEXES] if n not in indexes]
        invalid = [
            n for n in [*BALANCE_INDEXES, *LEDGER_INDEXES] if n in indexes and not indexes[n][1]
        ]
        not_unique = (
            "inventory_balances_key_uniq" in indexes
            and not indexes["inventory_balances_key_uniq"][0]
        )
        problems = (
            ([f"missing: {', '.join(missing)}"] if missing else [])
            + ([f"invalid: {', '.join(invalid)}"] if invalid else [])
            + (["inventory_balances_key_uniq is not unique"] if not_unique else [])
        )
        add(Check("Balance table indexes exist", not problems, "; ".join(problems)))

        cur.execute(
            """
            SELECT t.tgname, t.tgenabled FROM pg_trigger t
              JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = %s AND c.relname = 'inventory_ledger'
               AND t.tgname IN ('inventory_ledger_no_update_delete', 'inventory_ledger_no_truncate')""",
            [schema],
        )
        guards = dict(cur.fetchall())
        guard_problems = [
            f"{g} missing"
            for g in ("inventory_ledger_no_update_delete", "inventory_ledger_no_truncate")
            if g not in guards
        ] + [f"{g} disabled" for g, e in guards.items() if e not in ("O", "A")]
        add(
            Check(
                "Ledger is append-only (UPDATE, DELETE, TRUNCATE refused)",
                not guard_problems,
                "; ".join(guard_problems),
            )
        )
    return report


def migration_sql_reapply(*, schema: str) -> None:
    """The guide's "if missing, re-run migration": run every (idempotent) forward SQL file again
    in `schema`, in migration order. Restores a dropped trigger or index, re-enables nothing that
    was deliberately disabled (ALTER TABLE … ENABLE TRIGGER does that), loses no data."""
    from django.db import transaction

    from inventory.sql import FORWARD, read_sql

    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT set_config('search_path', %s, true)", [f'"{schema}", public'])
        for name in FORWARD:
            cur.execute(read_sql(name))
