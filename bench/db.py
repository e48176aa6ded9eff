"""Set-up: a separate database, one organisation schema per variant, a key space, row generators.

The bench database is `inventory_bench` on the embedded server (or BENCH_DATABASE_URL). Its
schemas are made by the project's own code (migrate_schemas, organization_create), so tables,
indexes and triggers are exactly what the migrations build; the variants then only swap the
balance trigger:

    bench       reads (the real statement-level trigger keeps the balances)
    bench_none  writes, no balance trigger
    bench_row   writes, a FOR EACH ROW upsert trigger (bench/sql/row_trigger.sql)
    bench_stmt  writes, the real statement-level trigger with a transition table
    bench_stmt_static  writes, the same trigger with static SQL (bench/sql/statement_static.sql)
    bench_policy  writes, the real trigger with the no-negative stock policy on (issue 14)
    bench_bare  writes, reference only: a plain schema whose inventory_ledger has the same columns,
                defaults and CHECKs but no foreign keys, no secondary index and no trigger

In these schemas only, the append-only guards are disabled so that TRUNCATE can reset tables.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

BENCH_DIR = Path(__file__).resolve().parent
BASE_DIR = BENCH_DIR.parent
BENCH_DB_NAME = "inventory_bench"

READ_SCHEMA = "bench"
WRITE_SCHEMAS = {
    "none": "bench_none",
    "row": "bench_row",
    "statement": "bench_stmt",
    "statement-static": "bench_stmt_static",
    "policy": "bench_policy",
}
ALL_SCHEMAS = [READ_SCHEMA, *WRITE_SCHEMAS.values()]
BARE_SCHEMA = "bench_bare"  # not an organisation; made from bench_none's tables

LEDGER_COLUMNS = (
    "item_id, location_id, lot_id, qty_canonical, kind, reference, "
    "occurred_at, recorded_at, recorded_by"
)
BALANCE_TRIGGER = "inventory_ledger_balance_trigger"  # the real one, statement level
# Bench-only triggers: variant -> (trigger name, SQL file in bench/sql/)
BENCH_TRIGGERS = {
    "row": ("bench_balance_row_trigger", "row_trigger.sql"),
    "statement-static": ("bench_balance_statement_static_trigger", "statement_static.sql"),
}


def bench_database_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url
    from config.embedded_db import embedded_database_url

    return embedded_database_url(BENCH_DB_NAME)


def prepare_schemas(url: str) -> None:
    """Migrate the bench database and create the bench organisations, with Django, then close."""
    os.environ["DATABASE_URL"] = url  # settings read it; never the dev or test database
    os.environ["DEBUG"] = "true"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from tenants.services import organization_create, public_tenant_ensure

    # Every schema of this database: public, then any bench schema left by an earlier run.
    call_command("migrate_schemas", executor="standard", interactive=False, verbosity=0)
    public_tenant_ensure()
    for schema in ALL_SCHEMAS:
        organization_create(slug=schema.replace("_", "-"), name=f"Bench {schema}")
    connection.close()


def connect(url: str, schema: str) -> psycopg.Connection:
    """A plain psycopg connection in autocommit on one bench schema. psycopg's default: a query
    run 5 times becomes a server-side prepared statement. (Django binds on the client side and
    so parses and plans every query: some tens of µs more per query; see docs/PERFORMANCE.md.)"""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(f"SET search_path TO {schema}, public")
    return conn


def configure_variant(conn: psycopg.Connection, schema: str, variant: str) -> None:
    """Guards off (bench schemas only) and the balance trigger of the variant in place."""
    conn.execute("ALTER TABLE inventory_ledger DISABLE TRIGGER inventory_ledger_no_update_delete")
    conn.execute("ALTER TABLE inventory_ledger DISABLE TRIGGER inventory_ledger_no_truncate")
    for trigger, _ in BENCH_TRIGGERS.values():
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger} ON inventory_ledger")
    if variant not in ("statement", "policy"):
        conn.execute(f"DROP TRIGGER IF EXISTS {BALANCE_TRIGGER} ON inventory_ledger")
    # The real trigger checks the no-negative policy (sql/v5_stock_policy.sql) only when it is on.
    conn.execute("UPDATE inventory_settings SET no_negative_stock = %s", [variant == "policy"])
    if variant in BENCH_TRIGGERS:
        sql = (BENCH_DIR / "sql" / BENCH_TRIGGERS[variant][1]).read_text()
        conn.execute(sql.replace("{schema}", schema))
    if variant in ("statement", "policy"):
        exists = conn.execute(
            "SELECT 1 FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = %s",
            [f"{schema}.inventory_ledger", BALANCE_TRIGGER],
        ).fetchone()
        if not exists:
            raise RuntimeError(f"{schema}: the migrated {BALANCE_TRIGGER} is missing")


def create_bare(conn: psycopg.Connection) -> None:
    """bench_bare.inventory_ledger: the ledger's columns, defaults, identity and CHECKs with only a
    primary key; no foreign keys, secondary indexes or triggers. Remade on every run."""
    conn.execute(f"DROP SCHEMA IF EXISTS {BARE_SCHEMA} CASCADE")
    conn.execute(f"CREATE SCHEMA {BARE_SCHEMA}")
    for table in ("inventory_ledger", "inventory_balances"):
        conn.execute(
            f"CREATE TABLE {BARE_SCHEMA}.{table} "
            f"(LIKE {WRITE_SCHEMAS['none']}.{table} INCLUDING ALL EXCLUDING INDEXES)"
        )
        conn.execute(f"ALTER TABLE {BARE_SCHEMA}.{table} ADD PRIMARY KEY (id)")


def truncate_ledger(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE inventory_ledger, inventory_balances RESTART IDENTITY")


_can_checkpoint = True


def checkpoint(conn: psycopg.Connection) -> None:
    """CHECKPOINT before a timed phase, so that no checkpoint started by earlier writes (a 200k
    row COPY writes ~150 MB of WAL) flushes pages during it. Needs superuser or pg_checkpoint;
    skipped without."""
    global _can_checkpoint
    if _can_checkpoint:
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            _can_checkpoint = False


@dataclass(frozen=True)
class KeySpace:
    item_ids: list[int]
    keys: list[tuple[int, int, int | None]]  # (item_id, location_id, lot_id or None)


def load_key_space(
    conn: psycopg.Connection, items: int, locations: int, lot_every: int, lots_per_item: int
) -> KeySpace:
    """Fresh items, locations and lots. Every `lot_every`-th item is lot-tracked: its keys are
    (item, location, lot) for each of its lots; other items have one key per location."""
    conn.execute(
        "TRUNCATE inventory_ledger, inventory_balances, inventory_postings, inventory_lots, "
        "inventory_items, inventory_locations RESTART IDENTITY CASCADE"
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO inventory_items (sku, name, unit, is_active, created_at) "
            "VALUES (%s, %s, 'ea', true, now())",
            [(f"SKU-{i:05d}", f"Item {i}") for i in range(items)],
        )
        cur.executemany(
            "INSERT INTO inventory_locations (code, name, site, is_active) "
            "VALUES (%s, %s, '', true)",
            [(f"LOC-{i:03d}", f"Location {i}") for i in range(locations)],
        )
    item_ids = [r[0] for r in conn.execute("SELECT id FROM inventory_items ORDER BY id")]
    location_ids = [r[0] for r in conn.execute("SELECT id FROM inventory_locations ORDER BY id")]
    lots: dict[int, list[int]] = {}
    for n, item_id in enumerate(item_ids):
        if lot_every and n % lot_every == 0:
            lots[item_id] = [
                conn.execute(
                    "INSERT INTO inventory_lots (item_id, code) VALUES (%s, %s) RETURNING id",
                    [item_id, f"LOT-{item_id}-{k}"],
                ).fetchone()[0]
                for k in range(lots_per_item)
            ]
    keys = [
        (item_id, loc_id, lot_id)
        for item_id in item_ids
        for loc_id in location_ids
        for lot_id in lots.get(item_id, [None])
    ]
    return KeySpace(item_ids=item_ids, keys=keys)


# --- Row generators: everything is built before a timed loop starts ------------------------

TS = "2026-01-01 00:00:00+00"
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
NULL = "\\N"  # NULL in COPY text format


def random_rows(rng: random.Random, keys, n: int):
    """n ledger rows as (item_id, location_id, lot_id, qty text, kind), random key each."""
    out = []
    for _ in range(n):
        item_id, loc_id, lot_id = keys[rng.randrange(len(keys))]
        milli = rng.randint(1, 100_000)
        if rng.random() < 0.4:
            out.append((item_id, loc_id, lot_id, f"-{milli / 1000:.3f}", "issue"))
        else:
            out.append((item_id, loc_id, lot_id, f"{milli / 1000:.3f}", "receipt"))
    return out


def opening_rows(keys) -> list[tuple]:
    """One large receipt per key: what every write run starts from (untimed), so that no random
    issue can take a balance below zero under the `policy` variant, and every variant's timed
    statements update existing balances alike."""
    return [(i, loc, lot, "1000000000", "opening") for i, loc, lot in keys]


def occurred(n: int) -> str:
    """Row n's occurred_at: one second after row n-1's (the as-of reads need spread times)."""
    return (BASE_TIME + timedelta(seconds=n)).isoformat()


def copy_chunks(rows, chunk_rows: int = 10_000, first: int | None = None) -> list[bytes]:
    """COPY text-format data for the rows, in chunks. With `first`, row k occurs at
    occurred(first + k); otherwise all at TS."""
    chunks = []
    for start in range(0, len(rows), chunk_rows):
        lines = [
            f"{i}\t{loc}\t{NULL if lot is None else lot}\t{qty}\t{kind}\t\t"
            f"{TS if first is None else occurred(first + start + k)}\t{TS}\t\n"
            for k, (i, loc, lot, qty, kind) in enumerate(rows[start : start + chunk_rows])
        ]
        chunks.append("".join(lines).encode())
    return chunks


COPY_SQL = f"COPY inventory_ledger ({LEDGER_COLUMNS}) FROM STDIN"


def copy_rows(conn: psycopg.Connection, chunks: list[bytes]) -> None:
    """One COPY statement (one transaction) for all the chunks."""
    with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
        for chunk in chunks:
            copy.write(chunk)


def multirow_statements(rows, per_statement: int) -> list[str]:
    """INSERT ... VALUES (...), (...) statements with literal values, per_statement rows each."""
    stmts = []
    for start in range(0, len(rows), per_statement):
        values = ",".join(
            f"({i},{loc},{'NULL' if lot is None else lot},{qty},'{kind}','',now(),now(),'')"
            for i, loc, lot, qty, kind in rows[start : start + per_statement]
        )
        stmts.append(f"INSERT INTO inventory_ledger ({LEDGER_COLUMNS}) VALUES {values}")
    return stmts


SINGLE_INSERT_SQL = (
    f"INSERT INTO inventory_ledger ({LEDGER_COLUMNS}) "
    "VALUES (%s, %s, %s, %s::numeric, %s, '', now(), now(), '')"
)
