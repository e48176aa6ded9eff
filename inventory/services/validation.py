"""The migration guide's `validate:migration`: is everything the balance migration creates there,
in a given schema, switched on, and backfilled? Reads only (catalogs and two aggregates); changes
nothing. Every failing check names the command that fixes it: `repair_balances` puts back the
current objects and backfills; `migrate_schemas` only applies what django_migrations does not
already record, so it cannot put back objects dropped by hand."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection

from inventory.balances import balances_coverage
from inventory.services.stock_policy import objects_problem

BALANCE_INDEXES = {
    "inventory_balances_key_uniq": "unique (item_id, location_id, lot_key)",
    "inventory_balances_location_idx": "lookup by location",
    "inventory_balances_lot_idx": "lookup by lot",
}
LEDGER_INDEXES = {"inventory_ledger_key_idx": "ledger history per key"}
BALANCE_QTY_TYPE = "numeric(38,6)"


def repair_hint(schema: str) -> str:
    return f"run manage.py repair_balances --schema {schema}"


class BalanceObjectsMissing(RuntimeError):
    """A schema lacks the ledger or the balance table, so balances cannot be read or rebuilt."""


def balance_objects_require(*, schema: str, table: bool = True) -> BalanceObjects:
    """Refuse, with the command that fixes it, to work on a schema without its ledger (or its
    balance table): better one clear line than a ProgrammingError half-way."""
    objects = balance_objects_by_schema([schema])[schema]
    if not objects.ledger:
        raise BalanceObjectsMissing(
            f"{schema}: inventory_ledger is missing (migrations not applied, or not an "
            f"inventory schema); run manage.py migrate_schemas --schema {schema}"
        )
    if table and not objects.table:
        raise BalanceObjectsMissing(
            f"{schema}: inventory_balances is missing; {repair_hint(schema)}"
        )
    return objects


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'✅' if self.ok else '❌'} {self.name}" + ("" if self.ok else f" — {self.detail}")


def _check(name: str, ok: bool, good: str, bad: str) -> Check:
    # The detail always describes what was found, so ok and detail never disagree (--json).
    return Check(name, ok, good if ok else bad)


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


# --- the three objects of the guide, for many schemas at once (fleet, runbook, health) -----------


@dataclass(frozen=True)
class BalanceObjects:
    """What the catalog holds in one schema, whatever django_migrations records."""

    schema: str
    ledger: bool
    table: bool
    trigger: bool
    trigger_enabled: bool
    function: bool

    @property
    def present(self) -> bool:
        return self.table and self.trigger and self.function

    @property
    def live(self) -> bool:
        return self.present and self.trigger_enabled

    @property
    def missing(self) -> list[str]:
        return [
            name
            for name, there in (
                ("inventory_balances", self.table),
                ("inventory_ledger_balance_trigger", self.trigger),
                ("update_inventory_balance()", self.function),
            )
            if not there
        ]

    def as_dict(self) -> dict:
        return {
            "ok": self.live,
            "table": self.table,
            "trigger": self.trigger,
            "trigger_enabled": self.trigger_enabled,
            "function": self.function,
        }


_OBJECTS_SQL = """
    SELECT s.name,
           l.oid IS NOT NULL,
           b.oid IS NOT NULL,
           t.oid IS NOT NULL,
           COALESCE(t.tgenabled IN ('O', 'A'), false),
           EXISTS (SELECT 1 FROM pg_proc p
                    WHERE p.pronamespace = n.oid AND p.proname = 'update_inventory_balance')
      FROM unnest(%s::text[]) AS s(name)
      LEFT JOIN pg_namespace n ON n.nspname = s.name
      LEFT JOIN pg_class l ON l.relnamespace = n.oid AND l.relname = 'inventory_ledger'
                          AND l.relkind IN ('r', 'p')
      LEFT JOIN pg_class b ON b.relnamespace = n.oid AND b.relname = 'inventory_balances'
                          AND b.relkind IN ('r', 'p')
      LEFT JOIN pg_trigger t ON t.tgrelid = l.oid AND t.tgname = 'inventory_ledger_balance_trigger'
"""


def balance_objects_by_schema(schemas: list[str]) -> dict[str, BalanceObjects]:
    """The balance table, trigger and function of every schema, in one catalog query."""
    if not schemas:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_OBJECTS_SQL, [list(schemas)])
        return {row[0]: BalanceObjects(*row) for row in cursor.fetchall()}


def _one(cursor, sql: str, params: list) -> tuple | None:
    cursor.execute(sql, params)
    return cursor.fetchone()


def _coverage_check(schema: str) -> Check:
    """Balances cover the ledger: as many balance rows as ledger keys, and the same grand total
    (inventory.balances.balances_coverage: one snapshot). It does not find two keys off by
    opposite amounts; the full reconciliation does."""
    c = balances_coverage(schema=schema)
    rows, ledger_keys, ledger_total, balance_keys, balance_total = (
        c.ledger_rows,
        c.ledger_keys,
        c.ledger_total,
        c.balance_keys,
        c.balance_total,
    )
    name = "Balances cover the ledger"
    if rows and not balance_keys:
        return Check(
            name,
            False,
            f"not backfilled: {rows} ledger rows and no balance row; "
            f"run manage.py backfill_balances --schema {schema}",
        )
    if ledger_keys != balance_keys or ledger_total != balance_total:
        return Check(
            name,
            False,
            f"ledger {ledger_keys} keys totalling {ledger_total}, balances {balance_keys} rows "
            f"totalling {balance_total}; run manage.py backfill_balances --schema {schema}",
        )
    return Check(name, True, f"{balance_keys} keys, total {balance_total}")


def migration_validate(*, schema: str) -> ValidationReport:
    report = ValidationReport(schema=schema)
    add = report.checks.append
    fix = repair_hint(schema)
    with connection.cursor() as cur:
        row = _one(cur, "SELECT to_regclass('public.organizations')", [])
        add(
            _check(
                "Organizations table exists",
                row[0] is not None,
                "public.organizations",
                "public.organizations is missing; run manage.py migrate_schemas --shared",
            )
        )
        [objects] = balance_objects_by_schema([schema]).values()
        if not objects.ledger:
            # Nothing below can be checked (or repaired) without the ledger: a schema whose
            # migrations never ran, or not an inventory schema at all.
            add(
                Check(
                    "Inventory ledger table exists",
                    False,
                    f"{schema}.inventory_ledger is missing; run manage.py migrate_schemas --schema {schema}",
                )
            )
            return report

        add(
            _check(
                "Inventory balances table exists",
                objects.table,
                f"{schema}.inventory_balances",
                f"{schema}.inventory_balances is missing; {fix}",
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
            _check(
                "Balance trigger exists",
                trig is not None,
                "inventory_ledger_balance_trigger on inventory_ledger",
                f"inventory_ledger_balance_trigger is missing on inventory_ledger; {fix}",
            )
        )
        if trig is not None:
            enabled, tgtype, proname, fn_schema = trig
            add(
                _check(
                    "Balance trigger is enabled",
                    enabled in ("O", "A"),
                    "enabled",
                    f"the trigger is disabled (tgenabled={enabled!r}); {fix}",
                )
            )
            # tgtype bit 0: row-level; bit 2: INSERT. We expect AFTER INSERT FOR EACH STATEMENT.
            add(
                _check(
                    "Balance trigger fires after each insert statement",
                    (tgtype & 1) == 0 and (tgtype & 4) != 0,
                    "AFTER INSERT FOR EACH STATEMENT",
                    f"unexpected trigger type {tgtype}; {fix}",
                )
            )
            add(
                _check(
                    "Balance trigger calls this schema's function",
                    proname == "update_inventory_balance" and fn_schema == schema,
                    f"{fn_schema}.{proname}()",
                    f"it calls {fn_schema}.{proname}(); {fix}",
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
            _check(
                "Balance function exists",
                row is not None,
                f"{schema}.update_inventory_balance()",
                f"{schema}.update_inventory_balance() is missing; {fix}",
            )
        )
        if row is not None:
            pinned = [c.split("=", 1)[1] for c in (row[0] or []) if c.startswith("search_path=")]
            first = pinned[0].split(",")[0].strip().strip('"') if pinned else None
            add(
                _check(
                    "Balance function writes this schema's balances",
                    first == schema,
                    f"search_path={pinned[0] if pinned else ''}",
                    f"its search_path is {pinned[0] if pinned else 'not pinned'}; {fix}",
                )
            )
        # The no-negative stock policy (v5): its settings row and a function that reads it.
        policy = objects_problem(cur, schema)
        add(
            _check(
                "No-negative stock policy is in place",
                policy is None,
                "inventory_settings (one row), read by update_inventory_balance()",
                f"{policy}; {fix}",
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
        wanted = [*BALANCE_INDEXES, *LEDGER_INDEXES]
        missing = [n for n in wanted if n not in indexes]
        invalid = [n for n in wanted if n in indexes and not indexes[n][1]]
        not_unique = (
            "inventory_balances_key_uniq" in indexes
            and not indexes["inventory_balances_key_uniq"][0]
        )
        problems = (
            ([f"missing: {', '.join(missing)}"] if missing else [])
            + ([f"invalid: {', '.join(invalid)}"] if invalid else [])
            + (["inventory_balances_key_uniq is not unique"] if not_unique else [])
        )
        add(
            _check(
                "Balance table indexes exist",
                not problems,
                ", ".join(wanted),
                "; ".join(problems) + f"; {fix}",
            )
        )

        if objects.table:
            row = _one(
                cur,
                """
                SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                 WHERE a.attrelid = to_regclass(%s) AND a.attname = 'qty_canonical'""",
                [f"{connection.ops.quote_name(schema)}.inventory_balances"],
            )
            qty_type = row[0] if row else None
            add(
                _check(
                    "Balance quantities cannot overflow",
                    qty_type == BALANCE_QTY_TYPE,
                    BALANCE_QTY_TYPE,
                    f"qty_canonical is {qty_type}, not {BALANCE_QTY_TYPE}; {fix}",
                )
            )
            add(_coverage_check(schema))

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
            _check(
                "Ledger is append-only (UPDATE, DELETE, TRUNCATE refused)",
                not guard_problems,
                "inventory_ledger_no_update_delete, inventory_ledger_no_truncate",
                "; ".join(guard_problems) + f"; {fix}",
            )
        )
    return report
