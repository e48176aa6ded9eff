"""Bulk load of a large file into a small ledger (an organisation's first import), the way the
PostgreSQL manual's "Populating a Database" says: drop the ledger's secondary indexes and foreign
keys, insert the rows, build the indexes again (one sort each) and add the foreign keys back
(one anti-join each, where the per-row checks cost a trigger call per row and key).

For 10^6 rows into an empty ledger on the 2-core machine: 22.1 s with the nine indexes and four
foreign keys kept (of which about 10 s are the row-by-row foreign-key triggers), against about
8 s this way (docs/PERFORMANCE.md "Import").

All of it runs in the import's own transaction, so a failure anywhere (a refused stock policy, a
bad reference, a crash) rolls the DDL back with the rows: the ledger keeps its indexes and keys.
The price is an ACCESS EXCLUSIVE lock on the organisation's ledger (and the catalogue tables its
keys reference) until COMMIT: readers and postings of this one organisation wait for the import.
So it is taken only when that costs little: a file of at least IMPORT_BULK_MIN_ROWS rows into a
ledger holding fewer rows than the file (rebuilding the indexes costs the rows already there
too), and only if the locks come within IMPORT_BULK_LOCK_TIMEOUT_MS; otherwise, or when the
caller asks for `online`, the import writes through the indexes as any posting does.

The definitions are read from the catalogue (pg_get_indexdef, pg_get_constraintdef) just before
they are dropped, so what is built again is exactly what was there, whatever migrations made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import OperationalError, transaction
from psycopg import sql

# The lock not granted within the timeout, or a deadlock with a session that holds the ledger
# and waits for a catalogue row this import wrote: either way, write online instead.
LOCK_NOT_AVAILABLE, DEADLOCK_DETECTED = "55P03", "40P01"

# Secondary indexes not backing a constraint (the primary key stays: the identity column's
# values are checked by it as the rows go in), with the statement that builds each.
_INDEXES = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), pg_get_indexdef(i.indexrelid)
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE i.indrelid = 'inventory_ledger'::regclass
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
 ORDER BY c.relname"""
_FOREIGN_KEYS = """
SELECT quote_ident(conname), pg_get_constraintdef(oid)
  FROM pg_constraint
 WHERE conrelid = 'inventory_ledger'::regclass AND contype = 'f'
 ORDER BY conname"""


@dataclass(frozen=True)
class LedgerBulkLoad:
    """What was dropped or changed, to be put back by ledger_bulk_load_finish."""

    indexes: list[tuple[str, str]]  # (schema-qualified name, CREATE INDEX statement)
    foreign_keys: list[tuple[str, str]]  # (quoted name, definition)
    # (quoted column, its default expression before the load or None): ledger_bulk_load_constants
    defaults: list[tuple[str, str | None]] = field(default_factory=list)


def ledger_bulk_load_start(cursor, rows: int, *, online: bool = False) -> LedgerBulkLoad | None:
    """In the caller's transaction, before it writes `rows` ledger rows: lock the ledger and
    drop its secondary indexes and foreign keys if bulk loading pays (see the module), else
    change nothing and return None (write through the indexes)."""
    if online or rows < settings.IMPORT_BULK_MIN_ROWS:
        return None
    # Counted first without the lock (a plain read blocks nobody): a ledger already holding the
    # file's rows or more is not locked at all. Counting stops at `rows`, so a large ledger is
    # not read through. (The statistics' row counts would be cheaper but can say more rows than
    # there are: an index build's count in pg_class survives its rollback.)
    if _ledger_rows_upto(cursor, rows) >= rows:
        return None
    try:
        # A savepoint: a lock not granted in time, or a ledger too large, is rolled back to it,
        # which also releases the lock.
        with transaction.atomic():
            cursor.execute(f"SET LOCAL lock_timeout = {int(settings.IMPORT_BULK_LOCK_TIMEOUT_MS)}")
            cursor.execute("LOCK TABLE inventory_ledger IN ACCESS EXCLUSIVE MODE")
            if _ledger_rows_upto(cursor, rows) >= rows:  # again: rows may have come meanwhile
                raise _WriteOnline
            cursor.execute(_INDEXES)
            indexes = [(name, create) for name, create in cursor.fetchall()]
            cursor.execute(_FOREIGN_KEYS)
            foreign_keys = [(name, definition) for name, definition in cursor.fetchall()]
            if foreign_keys:
                # The referenced tables must have no deferred checks queued (the lots this
                # import created check their item), or PostgreSQL refuses to alter them: run
                # those checks now, then defer again, as Django's constraints are declared.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
                # Locks the referenced catalogue tables too (their RI triggers go).
                cursor.execute(
                    "ALTER TABLE inventory_ledger "
                    + ", ".join(f"DROP CONSTRAINT {name}" for name, _ in foreign_keys)
                )
            if indexes:
                cursor.execute("DROP INDEX " + ", ".join(name for name, _ in indexes))
            cursor.execute("SET LOCAL lock_timeout TO DEFAULT")
    except _WriteOnline:
        return None
    except OperationalError as err:
        if getattr(err.__cause__, "sqlstate", None) not in (LOCK_NOT_AVAILABLE, DEADLOCK_DETECTED):
            raise
        return None
    return LedgerBulkLoad(indexes=indexes, foreign_keys=foreign_keys)


def ledger_bulk_load_constants(cursor, load: LedgerBulkLoad, values: dict) -> None:
    """Make `values` (column -> value, the same for every row of this load: the posting, its
    time and author) the defaults of those ledger columns until ledger_bulk_load_finish puts
    the columns' own defaults back, so that a COPY can leave them out: for 10^6 rows, 70 MB
    of text PostgreSQL no longer parses (a time stamp per row among it), 0.4-1.0 s of the
    COPY. Under the load's lock, in its transaction: no other session writes meanwhile, and
    a failure rolls the defaults back with everything else."""
    cursor.execute(
        """SELECT quote_ident(a.attname), pg_get_expr(d.adbin, d.adrelid)
             FROM pg_attribute a
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = 'inventory_ledger'::regclass AND a.attname = ANY(%s)
              AND NOT a.attisdropped""",
        [list(values)],
    )
    found = cursor.fetchall()
    if len(found) != len(values):
        raise ValueError(f"the ledger lacks a column of {sorted(values)}")
    load.defaults.extend(found)
    # DDL takes no bind parameters: the values go in as literals, quoted by psycopg.
    alter = sql.SQL("ALTER TABLE inventory_ledger {}").format(
        sql.SQL(", ").join(
            sql.SQL("ALTER COLUMN {} SET DEFAULT {}").format(sql.Identifier(c), sql.Literal(v))
            for c, v in values.items()
        )
    )
    cursor.execute(alter.as_string(cursor.cursor.connection))


def ledger_bulk_load_finish(cursor, load: LedgerBulkLoad) -> None:
    """Put back the columns' defaults, build the dropped indexes (each one sort of the whole
    ledger) and add the foreign keys back (each validated by one query over the ledger), in the
    same transaction."""
    if load.defaults:
        cursor.execute(
            "ALTER TABLE inventory_ledger "
            + ", ".join(
                f"ALTER COLUMN {column} "
                + (f"SET DEFAULT {default}" if default is not None else "DROP DEFAULT")
                for column, default in load.defaults
            )
        )
    cursor.execute(f"SET LOCAL maintenance_work_mem = '{int(settings.IMPORT_BULK_SORT_MB)}MB'")
    for _name, create in load.indexes:
        cursor.execute(create)
    if load.foreign_keys:
        cursor.execute(
            "ALTER TABLE inventory_ledger "
            + ", ".join(
                f"ADD CONSTRAINT {name} {definition}" for name, definition in load.foreign_keys
            )
        )
    cursor.execute("SET LOCAL maintenance_work_mem TO DEFAULT")


def _ledger_rows_upto(cursor, rows: int) -> int:
    cursor.execute("SELECT count(*) FROM (SELECT FROM inventory_ledger LIMIT %s) s", [rows])
    return cursor.fetchone()[0]


class _WriteOnline(Exception):
    """The ledger already holds as many rows as the file: rebuilding its indexes costs more."""


def ledger_ids_reserve(cursor, count: int) -> int:
    """Reserve `count` consecutive ledger ids and return the one before the first, so that a
    bulk load can give its rows ids in the file's order without sorting them. Only under the
    lock ledger_bulk_load_start took: no other session can draw from the sequence meanwhile
    (only inserts into the ledger do, and they wait for the lock)."""
    cursor.execute("SELECT pg_get_serial_sequence('inventory_ledger', 'id')")
    [sequence] = cursor.fetchone()
    cursor.execute("SELECT nextval(%s)", [sequence])
    first = cursor.fetchone()[0]
    cursor.execute("SELECT setval(%s, %s)", [sequence, first + count - 1])
    return first - 1
