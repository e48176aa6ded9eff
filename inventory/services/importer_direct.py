"""The direct path of `import_ledger` (inventory/services/importer.py) for its commonest and
largest case: a plain file (no quote, CR or NUL) bulk loaded into a small ledger.

The staged path COPYs the file into a temporary table, runs the sieve over it in SQL, then
INSERT ... SELECTs the ledger rows: three passes over a million rows, each on one core, while
the Python process waits. Here the file is read once: each line is split and run through the
same sieve in Python (the row rules of importer_sql._ROW_SUSPECT, clause for clause, with
qty_sure, time_sure and expiry_sure; the code rules of its SUMMARIES as codes are resolved), its codes are resolved through
small dictionaries, and the row goes straight into a COPY of the ledger, whose indexes and
foreign keys the bulk load has dropped. PostgreSQL parses and writes the rows on one core while
Python reads the next ones on the other (docs/PERFORMANCE.md "Import").

It is an optimistic path, never a second judge: the first row it is not sure of (anything the
sieve would hand to the Python row checks, a code rule broken, a file it does not handle)
raises NotDirect, the caller rolls back to its savepoint (the rows, the codes, the bulk load's
DDL) and imports the file the staged way, which finds and words every problem. So a good file
gets the ledger rows the staged path would write, with its casts (PostgreSQL reads the same
text cells), and every other file gets the staged path's answer.

The posting, its time and its author, the same for every row, are not sent with each row: the
caller makes them the columns' defaults for the load (ledger_bulk_load_constants), and the
bulk load's finish puts the columns' own defaults back.

What differs, on purpose: the ledger ids are drawn in the file's order (as the staged bulk load
gives them; a blank line leaves no gap here), new codes get their ids per batch of rows in code
order (the staged path: all at once in code order), and the balance trigger runs once per COPY
(a COPY ends where a batch brings new codes: their rows must exist before the trigger's upsert
references them). Per-statement trigger runs sum to the same balances, but the no-negative stock
policy judges each statement, so with the policy on the file goes the staged way (one
statement); the policy row is locked FOR SHARE NOWAIT before the bulk load's locks
(policy_allows_statements), so it cannot be switched on meanwhile.
"""

from __future__ import annotations

import calendar
import csv
import operator
import re
from contextlib import ExitStack
from dataclasses import dataclass, field

from django.db import OperationalError

from inventory.services import importer_sql as sql
from inventory.services.ledger_bulk_load import LOCK_NOT_AVAILABLE
from inventory.services.ledger_copy import ledger_copy_text

# Rows held, once one names a code not seen before, until the catalogue is looked at.
BATCH_ROWS = 50_000
# Rows sent at a time otherwise: small writes keep PostgreSQL busy on the rows sent while
# Python reads the next ones (a large write would wait for PostgreSQL to take it all, and
# PostgreSQL would then wait for the next: the two cores taking turns instead of sharing).
WRITE_ROWS = 500
# Codes held in memory (id and unit per code): past this many the file goes the staged way.
MAX_CODES = 200_000


class NotDirect(Exception):
    """This file needs the staged path; the message says why (logged at INFO)."""


# The sieve's shapes (importer_sql), as regular expressions over ASCII digits: a quantity
# -?D{1,12}(.D{1,6})?; a date-time YYYY-MM-DD, T or space, HH:MM:SS, then Z, +HH:MM, -HH:MM or
# nothing, with the same field ranges (year 1900-2199, hour <= 23, offset hour <= 15).
_QTY = re.compile(r"-?[0-9]{1,12}(?:\.[0-9]{1,6})?")
_DATE = r"(19[0-9]{2}|2[01][0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_TIME = re.compile(
    _DATE + r"[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(Z|[+-](?:0[0-9]|1[0-5]):[0-5][0-9])?"
)
_EXPIRY = re.compile(_DATE)
_CODE = re.compile(sql.CODE_RE.removeprefix("^").removesuffix("$"))
_SPACE_AT_EDGE = re.compile(r"(?:^|,) | (?:,|$)")
_FIELDS = (
    "sku",
    "location",
    "lot",
    "qty",
    "kind",
    "reference",
    "occurred_at",
    "unit",
    "item_name",
    "location_name",
    "site",
    "lot_expires_on",
)
# A cell of a plain file as COPY text (no \n or \r can be in one): both paths use it.
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t"})
KINDS = frozenset(sql.KINDS)
UNITS = frozenset(sql.UNITS)


def _day_fits(match: re.Match) -> bool:
    """Day 29-31 of a YYYY-MM-DD the pattern matched exists in its month."""
    day = match[3]
    return day <= "28" or int(day) <= calendar.monthrange(int(match[1]), int(match[2]))[1]


def time_sure(text: str, naive_is_utc: bool) -> bool:
    """An occurred_at the sieve lets through (PostgreSQL and Python read it alike)."""
    match = _TIME.fullmatch(text)
    return (
        match is not None
        and (naive_is_utc or match[4] is not None)
        and (match[3] <= "28" or _day_fits(match))
    )


def qty_sure(text: str) -> bool:
    """A quantity of the sieve's shapes, not all zeros."""
    return _QTY.fullmatch(text) is not None and bool(text.strip("0.-"))


def expiry_sure(text: str) -> bool:
    match = _EXPIRY.fullmatch(text)
    return match is not None and _day_fits(match)


@dataclass
class _Catalog:
    """Codes seen so far: sku -> (id, unit), location -> id, (sku, lot) -> id; and the
    codes met since the last look, with the values of the first line naming each."""

    items: dict = field(default_factory=dict)
    locations: dict = field(default_factory=dict)
    lots: dict = field(default_factory=dict)
    new_items: dict = field(default_factory=dict)  # sku -> (unit, name)
    new_locations: dict = field(default_factory=dict)  # code -> (name, site)
    new_lots: dict = field(default_factory=dict)  # (sku, lot) -> expires_on text


def ledger_write_direct(
    cursor,
    stream,
    names: list[str],
    line: int,
    result,
    *,
    now,
    naive_is_utc: bool,
) -> None:
    """Read the rest of `stream` (its header, `line` lines, already read into `names`) and
    write its rows into the ledger of the cursor's schema, creating the codes it names, or
    raise NotDirect at the first thing only the staged path may judge. The caller holds the
    bulk load (ledger_bulk_load_start) and a savepoint to roll back to. Counts the rows and
    the codes created into `result` (the importer's ImportResult, zeroed)."""
    width = len(names)
    where = {name: i for i, name in enumerate(names)}
    # Every field of a row in one call; a column the header lacks reads the empty cell
    # appended to each row (index `width`).
    pick = operator.itemgetter(*(where.get(c, width) for c in _FIELDS))
    limit = csv.field_size_limit()
    now_text = now.isoformat()
    catalog = _Catalog()
    batch: list = []  # ledger lines (str) and rows whose codes are still unknown (tuples)
    unknown = False
    items, locations, lots = catalog.items, catalog.locations, catalog.lots
    with ExitStack() as stack:
        copy = None
        for raw in stream:
            line += 1
            text = raw[:-1] if raw[-1:] == "\n" else raw
            if not text:
                continue  # blank line
            cells = text.split(",")
            if len(cells) != width:
                if len(cells) < width:
                    cells += [""] * (width - len(cells))
                elif any(c.strip() for c in cells[width:]):
                    raise NotDirect(f"line {line}: too many values")
                else:
                    del cells[width:]
            if len(text) > limit:
                raise NotDirect(f"line {line}: a cell may pass the csv field limit")
            # Cells are trimmed (str.strip) as the staged path trims them; a line of printable
            # characters with no space next to a comma or an end has nothing to trim (every
            # whitespace character but the space is unprintable).
            if not text.isprintable() or (" " in text and _SPACE_AT_EDGE.search(text)):
                cells = [c.strip() for c in cells]
            cells.append("")
            sku, loc, lot, qty, kind, ref, at, unit, i_name, l_name, site, expires = pick(cells)
            # importer_sql._ROW_SUSPECT, clause for clause (no cell is longer than its line).
            if (
                not sku
                or not loc
                or kind not in KINDS
                or not qty_sure(qty)
                or (
                    len(text) > 64
                    and (
                        len(sku) > 64
                        or len(loc) > 64
                        or len(lot) > 64
                        or len(ref) > 200
                        or len(i_name) > 200
                        or len(l_name) > 200
                        or len(site) > 100
                    )
                )
                or (at and not time_sure(at, naive_is_utc))
                or (lot and expires and not expiry_sure(expires))
            ):
                raise NotDirect(f"line {line}: a row the sieve flags")
            if "\\" in ref or "\t" in ref:
                ref = ref.translate(COPY_ESCAPES)
            item = items.get(sku)
            if item is not None and loc in locations and (not lot or (sku, lot) in lots):
                if unit and unit != item[1]:
                    raise NotDirect(f"line {line}: the unit differs from item {sku}'s")
                lot_id = lots[(sku, lot)] if lot else "\\N"
                batch.append(
                    f"{item[0]}\t{locations[loc]}\t{lot_id}\t{qty}\t{kind}\t{ref}\t"
                    f"{at or now_text}\n"
                )
            else:
                # The first line naming a code defines it (the staged path's def lines).
                if item is None and sku not in catalog.new_items:
                    catalog.new_items[sku] = (unit, i_name or sku, line)
                if loc not in locations and loc not in catalog.new_locations:
                    catalog.new_locations[loc] = (l_name or loc, site, line)
                if lot and (sku, lot) not in lots and (sku, lot) not in catalog.new_lots:
                    catalog.new_lots[(sku, lot)] = (expires, line)
                batch.append((sku, loc, lot, unit, qty, kind, ref, at or now_text))
                unknown = True
            if len(batch) >= (BATCH_ROWS if unknown else WRITE_ROWS):
                copy = _flush(cursor, stack, copy, batch, unknown, catalog, result, now)
                batch, unknown = [], False
        if batch:
            copy = _flush(cursor, stack, copy, batch, unknown, catalog, result, now)
    if not result.rows:
        raise NotDirect("no rows")


def _flush(cursor, stack: ExitStack, copy, batch, unknown, catalog, result, now):
    """Write a batch into the open COPY; first, if it names new codes, end that COPY (its
    rows' balances are upserted then) and resolve or create the codes. Returns the COPY."""
    if unknown:
        if copy is not None:
            stack.close()  # ends the COPY statement: the balance trigger runs
            copy = None
        _codes_resolve(cursor, catalog, result, now)
        items, locations, lots = catalog.items, catalog.locations, catalog.lots
        for k, row in enumerate(batch):
            if isinstance(row, tuple):
                sku, loc, lot, unit, qty, kind, ref, at = row
                item_id, item_unit = items[sku]
                if unit and unit != item_unit:
                    raise NotDirect(f"the unit of item {sku} differs between lines")
                lot_id = lots[(sku, lot)] if lot else "\\N"
                batch[k] = f"{item_id}\t{locations[loc]}\t{lot_id}\t{qty}\t{kind}\t{ref}\t{at}\n"
    if copy is None:
        # The columns a row varies in; the posting, its time and author are the same for every
        # row of an import: the caller made them the columns' defaults for the load.
        copy = stack.enter_context(ledger_copy_text(cursor))
    copy.write("".join(batch))
    result.rows += len(batch)
    return copy


def _codes_resolve(cursor, catalog: _Catalog, result, now) -> None:
    """Look up the codes met since the last call; create the missing ones from their first
    line, by the staged path's rules (importer_sql.SUMMARIES' suspects: a new item needs a
    valid code and a unit on its first line; a new location or lot a valid code)."""
    if catalog.new_items:
        skus = list(catalog.new_items)
        cursor.execute("SELECT sku, id, unit FROM inventory_items WHERE sku = ANY(%s)", [skus])
        for sku, item_id, unit in cursor.fetchall():
            catalog.items[sku] = (item_id, unit)
        make = sorted(s for s in skus if s not in catalog.items)
        for sku in make:
            unit, _name, line = catalog.new_items[sku]
            if unit not in UNITS or _CODE.fullmatch(sku) is None:
                raise NotDirect(f"line {line}: new item {sku!r} needs the staged checks")
        if make:
            cursor.execute(
                """INSERT INTO inventory_items (sku, name, unit, is_active, created_at)
                   SELECT sku, left(name, 200), unit, true, %s
                     FROM unnest(%s::text[], %s::text[], %s::text[]) AS n (sku, name, unit)
                    ORDER BY sku
                   RETURNING sku, id, unit""",
                [
                    now,
                    make,
                    [catalog.new_items[s][1] for s in make],
                    [catalog.new_items[s][0] for s in make],
                ],
            )
            for sku, item_id, unit in cursor.fetchall():
                catalog.items[sku] = (item_id, unit)
            result.items_created += len(make)
        catalog.new_items.clear()
    if catalog.new_locations:
        codes = list(catalog.new_locations)
        cursor.execute("SELECT code, id FROM inventory_locations WHERE code = ANY(%s)", [codes])
        catalog.locations.update(cursor.fetchall())
        make = sorted(c for c in codes if c not in catalog.locations)
        for code in make:
            if _CODE.fullmatch(code) is None:
                raise NotDirect(f"line {catalog.new_locations[code][2]}: new location {code!r}")
        if make:
            cursor.execute(
                """INSERT INTO inventory_locations (code, name, site, is_active)
                   SELECT code, left(name, 200), left(site, 100), true
                     FROM unnest(%s::text[], %s::text[], %s::text[]) AS n (code, name, site)
                    ORDER BY code
                   RETURNING code, id""",
                [
                    make,
                    [catalog.new_locations[c][0] for c in make],
                    [catalog.new_locations[c][1] for c in make],
                ],
            )
            catalog.locations.update(cursor.fetchall())
            result.locations_created += len(make)
        catalog.new_locations.clear()
    if catalog.new_lots:
        keys = list(catalog.new_lots)
        cursor.execute(
            """SELECT i.sku, l.code, l.id
                 FROM unnest(%s::text[], %s::text[]) AS k (sku, code)
                 JOIN inventory_items i ON i.sku = k.sku
                 JOIN inventory_lots l ON l.item_id = i.id AND l.code = k.code""",
            [[s for s, _ in keys], [c for _, c in keys]],
        )
        for sku, code, lot_id in cursor.fetchall():
            catalog.lots[(sku, code)] = lot_id
        make = sorted((catalog.items[s][0], s, c) for s, c in keys if (s, c) not in catalog.lots)
        for _item_id, sku, code in make:
            if _CODE.fullmatch(code) is None:
                raise NotDirect(f"line {catalog.new_lots[(sku, code)][1]}: new lot {code!r}")
        if make:
            cursor.execute(
                """INSERT INTO inventory_lots (item_id, code, expires_on)
                   SELECT item_id, code, nullif(expires, '')::date
                     FROM unnest(%s::bigint[], %s::text[], %s::text[])
                          AS n (item_id, code, expires)
                    ORDER BY item_id, code
                   RETURNING item_id, code, id""",
                [
                    [m[0] for m in make],
                    [m[2] for m in make],
                    [catalog.new_lots[(m[1], m[2])][0] for m in make],
                ],
            )
            sku_of = {item_id: sku for item_id, sku, _ in make}
            for item_id, code, lot_id in cursor.fetchall():
                catalog.lots[(sku_of[item_id], code)] = lot_id
            result.lots_created += len(make)
        catalog.new_lots.clear()
    if len(catalog.items) + len(catalog.locations) + len(catalog.lots) > MAX_CODES:
        raise NotDirect(f"more than {MAX_CODES:,} codes")


def policy_allows_statements(cursor) -> None:
    """Refuse the direct path when the no-negative stock policy is on (it judges each COPY
    statement, where the staged path's one INSERT is judged whole), and lock the policy row so
    it stays off until this import commits. Called before the bulk load takes its locks, and
    never waits: a policy being changed right now sends the file the staged way (which reads
    the policy as any posting does) rather than holding the ledger and catalogue locked while
    it waits."""
    cursor.execute("SELECT to_regclass('inventory_settings') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return
    try:
        cursor.execute("SELECT no_negative_stock FROM inventory_settings WHERE id FOR SHARE NOWAIT")
    except OperationalError as err:
        if getattr(err.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise NotDirect("the stock policy is being changed") from None
        raise
    found = cursor.fetchone()
    if found is not None and found[0]:
        raise NotDirect("the no-negative stock policy is on")
