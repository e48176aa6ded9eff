"""Import of an existing ledger from CSV (an organisation moving over from the old system).

The file is read as a stream, in bounded memory whatever its size: a first pass takes its
SHA-256 (the import-once check needs it before anything is written), a second one parses it
with Python's csv module and COPYs the cells, trimmed, with their line numbers into a temporary
staging table. The checks then run set-wise in SQL (inventory/services/importer_sql.py): they
flag the rows that may break a rule, and only those go through the same row validation as the
API (inventory/services/ledger_rows.py) and the catalog rules below, so every problem is still
reported as "line N, column C: what is wrong" with the API's wording, and nothing is written.
A good file goes in as one transaction: missing items, locations and lots are created with one
INSERT ... SELECT each, then the ledger rows with one INSERT ... SELECT from the staging table
(the balance trigger fires once; the no-negative stock policy refuses it whole, a 409).

A plain file (no quote, CR or NUL) bulk loaded into a small ledger takes the direct path
instead (inventory/services/importer_direct.py): one pass, the same sieve in Python, COPY straight
into the ledger; the first row it is not sure of sends the file back here, to the staged path.

Idempotent: each import is a `Posting` whose idempotency key is the file's SHA-256 (or a batch
key the user gives), and its ledger rows point at it. The same file again is refused unless
forced, so a re-run never doubles the stock; the unique key also settles two imports of one
file racing each other.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import psycopg
from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from inventory.balances import balance_qty_limit
from inventory.models import Posting, Unit
from inventory.services import importer_sql as sql
from inventory.services.catalog import code_problem, expiry_date_problem
from inventory.services.errors import AlreadyImported, ValidationFailed
from inventory.services.importer_direct import (
    COPY_ESCAPES,
    NotDirect,
    ledger_write_direct,
    policy_allows_statements,
)
from inventory.services.ledger_bulk_load import (
    ledger_bulk_load_constants,
    ledger_bulk_load_finish,
    ledger_bulk_load_start,
    ledger_ids_reserve,
)
from inventory.services.ledger_rows import (
    CheckedRow,
    LedgerRowInput,
    ledger_row_check,
    text_problem,
    utf8_encodable,
)
from inventory.services.quantities import MAX_INTEGER_DIGITS
from inventory.services.stock_policy import refusal_from

REQUIRED, OPTIONAL = sql.REQUIRED, sql.OPTIONAL
MAX_ERRORS_REPORTED = 50
# Row fields (ledger_rows) → the CSV column that holds them.
COLUMN_OF = {"item": "sku", "location": "location", "lot": "lot", "qty": "qty", "kind": "kind"}
NAME_MAX, SITE_MAX, BATCH_KEY_MAX = 200, 100, 150
NUMERIC_OUT_OF_RANGE = "22003"
READ_CHUNK = 1 << 20  # bytes per read of the hashing pass
FETCH_SUSPECTS = 500  # suspect rows fetched (and held) at a time
BOM = codecs.BOM_UTF8

logger = logging.getLogger(__name__)


@dataclass
class ImportResult:
    rows: int = 0
    items_created: int = 0
    locations_created: int = 0
    lots_created: int = 0
    seconds: float = 0.0
    posting_id: int | None = None
    sha256: str = ""
    # "bulk": indexes and foreign keys rebuilt after the rows (ledger_bulk_load); "online".
    mode: str = "online"
    # Seconds per step (hash, stage, check, catalog, insert, [rebuild,] commit), for the benchmark.
    steps: dict[str, float] = field(default_factory=dict)

    def step(self, name: str, since: float) -> float:
        now = time.monotonic()
        self.steps[name] = round(now - since, 3)
        return now


class _Problems:
    """Problems keyed "line N, column C" (or "line N"). Only the first MAX_ERRORS_REPORTED
    lines' problems are kept (that is all the report shows), so a file with a million bad lines
    does not fill the memory; `added` counts every problem, kept or not."""

    def __init__(self):
        self.by_place: dict[str, list[str]] = {}
        self.place_line: dict[str, int] = {}
        self.kept_lines: set[int] = set()
        self.added = 0

    def add(self, line: int, column: str | None, message: str) -> None:
        self.added += 1
        if line not in self.kept_lines:
            if len(self.kept_lines) >= MAX_ERRORS_REPORTED:
                return
            self.kept_lines.add(line)
        place = f"line {line}, column {column}" if column else f"line {line}"
        self.by_place.setdefault(place, []).append(message)
        self.place_line.setdefault(place, line)

    def __bool__(self) -> bool:
        return bool(self.by_place)

    def raise_if_any(self, bad_lines: int | None = None, *, then: _Problems | None = None):
        """Raise with these problems and `then`'s (a later pass), in line order."""
        places = [(self.place_line[p], 0, i, p, self) for i, p in enumerate(self.by_place)]
        if then is not None:
            places += [(then.place_line[p], 1, i, p, then) for i, p in enumerate(then.by_place)]
        if not places:
            return
        places.sort(key=lambda place: place[:3])
        shown: dict[str, list[str]] = {}
        for _line, _pass, _order, place, owner in places:
            if place not in shown and len(shown) >= MAX_ERRORS_REPORTED:
                break
            shown.setdefault(place, []).extend(owner.by_place[place])
        count = bad_lines if bad_lines is not None else len(self.kept_lines)
        raise ValidationFailed(f"{count} line(s) are invalid; nothing was imported.", shown)


def import_key(*, digest: str, batch_key: str | None = None) -> str:
    """The idempotency key of an import."""
    if batch_key is None:
        return f"import:sha256:{digest}"
    problem = text_problem(batch_key, max_length=BATCH_KEY_MAX, required=True, what="batch key")
    if problem:
        raise ValidationFailed(f"Invalid batch key: {problem}.", {"batch_key": [problem]})
    return f"import:batch:{batch_key.strip()}"


class NotUtf8(ValueError):
    """The file is not UTF-8 text; the message says where (a byte offset in the file)."""


def file_digest(path: str | Path) -> tuple[str, bool, bool, int]:
    """(SHA-256 of the text, whether it holds a NUL, whether it is plain, its lines) of a UTF-8
    file, read in 1 MB chunks. The digest is of the text without a leading BOM, as before the streaming
    import, so a file imported then is still recognised. Plain: no double quote, carriage return
    or NUL, so each line is one row and its cells are what is between commas (_plain_cells).
    Raises NotUtf8."""
    digest, has_nul, plain, lines, last = hashlib.sha256(), False, True, 0, b"\n"
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as f:
        chunk = f.read(READ_CHUNK)
        if chunk.startswith(BOM):
            chunk, offset = chunk[len(BOM) :], len(BOM)
        while chunk:
            pending = len(decoder.getstate()[0])  # bytes of a character split between reads
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                at = offset - pending + err.start
                raise NotUtf8(
                    f"'utf-8' codec can't decode byte 0x{err.object[err.start]:02x} in "
                    f"position {at}: {err.reason}"
                ) from None
            digest.update(chunk)
            has_nul = has_nul or b"\x00" in chunk
            plain = plain and b'"' not in chunk and b"\r" not in chunk
            lines += chunk.count(b"\n")
            last = chunk[-1:]
            offset += len(chunk)
            chunk = f.read(READ_CHUNK)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as err:
            raise NotUtf8(f"the file ends inside a character: {err.reason}") from None
    return digest.hexdigest(), has_nul, plain and not has_nul, lines + (last != b"\n")


def ledger_import_csv(
    *,
    text: str | None = None,
    path: str | Path | None = None,
    source: str = "csv",
    batch_key: str | None = None,
    force: bool = False,
    online: bool = False,
) -> ImportResult:
    """Import a CSV file (`path`, streamed) or its content (`text`) into the current tenant,
    all or nothing. Refuses a file (by SHA-256) or batch key imported before unless `force`.
    A large file into a small ledger is bulk loaded (the ledger locked meanwhile) unless
    `online` (inventory/services/ledger_bulk_load.py)."""
    if (text is None) == (path is None):
        raise TypeError("ledger_import_csv needs one of text= and path=")
    started = time.monotonic()
    if path is not None:
        digest, odd_text, plain, lines = file_digest(path)
    else:
        lines = 0  # the direct path reads files only
        encoded = text.encode("utf-8", "surrogatepass")
        digest = hashlib.sha256(encoded).hexdigest()
        # NUL or lone surrogates: the parse pass then looks at every cell (slow path).
        odd_text = "\x00" in text or not utf8_encodable(text)
        plain = not odd_text and '"' not in text and "\r" not in text
    result = ImportResult(sha256=digest)
    mark = result.step("hash", started)
    key = import_key(digest=digest, batch_key=batch_key)
    if not force:
        _refuse_if_imported(key, batch_key)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # Sorting and hashing a million staged rows (and the balance trigger's grouping)
            # in memory rather than in temporary files; UTC for naive date-times (see the
            # checks' safe formats).
            cursor.execute("SET LOCAL work_mem = '256MB'")
            cursor.execute("SET LOCAL TIME ZONE 'UTC'")

            def new_posting(count: int) -> Posting:
                return _posting_create(key, digest, count, source, batch_key, force)

            mark = (
                _import_direct(cursor, path, lines, new_posting, source, result, mark)
                if path is not None and plain and not online
                else None
            ) or _import_staged(
                cursor, path, text, odd_text, plain, new_posting, source, online, result, mark
            )
            cursor.execute("SET LOCAL work_mem TO DEFAULT")
            cursor.execute("SET LOCAL TimeZone TO DEFAULT")
    except (DataError, psycopg.DataError) as err:
        sqlstate = getattr(err, "sqlstate", None) or getattr(err.__cause__, "sqlstate", None)
        if sqlstate == NUMERIC_OUT_OF_RANGE:
            raise ValidationFailed(
                "A balance would overflow; nothing was imported.",
                {"file": ["the resulting balances are too large for the balance table"]},
            ) from None
        raise
    result.step("commit", mark)
    result.seconds = time.monotonic() - started
    return result


def _import_staged(cursor, path, text, odd_text, plain, new_posting, source, online, result, mark):
    """The staged path: COPY into imp_rows, the checks in SQL (and Python on the flagged rows),
    the catalog, then the ledger in one INSERT ... SELECT. Returns the step clock."""
    if path is not None:
        with open(path, encoding="utf-8-sig", newline="") as stream:
            staged = _stage(cursor, stream, odd_text, plain)
    else:
        staged = _stage(cursor, io.StringIO(text, newline=""), odd_text, plain)
    result.rows = cursor.import_rows = staged
    mark = result.step("stage", mark)
    _check(cursor)
    mark = result.step("check", mark)
    posting = new_posting(staged)
    result.posting_id = posting.id
    _create_catalog(cursor, result)
    mark = result.step("catalog", mark)
    # The four foreign keys of the ledger are DEFERRABLE INITIALLY DEFERRED: PostgreSQL
    # checks them row by row at COMMIT, re-reading each new row from a heap that has
    # long left the buffer cache (18.9 s for 10^6 rows here). At the end of the
    # statement instead, while the rows are fresh, the same checks took 11.7 s.
    bulk = ledger_bulk_load_start(cursor, staged, online=online)
    result.mode = "bulk" if bulk else "online"
    deferred = "" if bulk else _ledger_foreign_keys(cursor)
    id_base = _ids_by_line(cursor) if bulk else None
    if deferred:
        cursor.execute(f"SET CONSTRAINTS {deferred} IMMEDIATE")
    try:
        with transaction.atomic():
            cursor.execute(
                sql.INSERT_LEDGER_BULK if bulk else sql.INSERT_LEDGER,
                {
                    "id_base": id_base,
                    "now": timezone.now(),
                    "recorded_at": timezone.now(),
                    "recorded_by": f"import:{source}"[:200],
                    "posting": posting.id,
                },
            )
    except (IntegrityError, psycopg.IntegrityError) as err:
        # The no-negative stock policy refused the INSERT (issue 14): a 409 naming
        # each key, looked up while the items this import created still exist.
        refusal = refusal_from(err)
        if refusal is None:
            raise
        raise refusal from None
    if deferred:
        cursor.execute(f"SET CONSTRAINTS {deferred} DEFERRED")  # as the caller had
    mark = result.step("insert", mark)
    if bulk:
        ledger_bulk_load_finish(cursor, bulk)
        mark = result.step("rebuild", mark)
    # ON COMMIT DROP does not fire when the caller's transaction goes on (a test, or a second
    # import in one transaction).
    cursor.execute(f"DROP TABLE {', '.join(sql.TEMP_TABLES)}")
    return mark


def _import_direct(cursor, path, lines, new_posting, source, result, mark):
    """The direct path (inventory/services/importer_direct.py) for a plain file bulk loaded
    into a small ledger, in a savepoint: the step clock if the file went in that way, or None,
    everything since rolled back, when it must go the staged way."""
    rows = lines - 1  # after the header; blank lines included: the bulk load's size test
    if rows < settings.IMPORT_BULK_MIN_ROWS or _balances_may_overflow(cursor, rows):
        return None
    try:
        with transaction.atomic():
            with open(path, encoding="utf-8-sig", newline="") as stream:
                reader = csv.reader(stream)
                problems = _Problems()
                names = list(_header(reader, problems))
                if problems:
                    raise NotDirect("the header has problems")
                policy_allows_statements(cursor)
                posting = new_posting(rows)
                bulk = ledger_bulk_load_start(cursor, rows)
                if bulk is None:
                    raise NotDirect("the ledger is not bulk loaded")
                now = timezone.now()
                ledger_bulk_load_constants(
                    cursor,
                    bulk,
                    {
                        "recorded_at": now,
                        "recorded_by": f"import:{source}"[:200],
                        "posting_id": posting.id,
                    },
                )
                ledger_write_direct(
                    cursor,
                    stream,
                    names,
                    reader.line_num,
                    result,
                    now=now,
                    naive_is_utc=settings.TIME_ZONE == "UTC",
                )
    except NotDirect as why:
        logger.info("import: the staged path (%s)", why)
        # The staged path sets every count again.
        result.rows = result.items_created = result.locations_created = result.lots_created = 0
        return None
    if result.rows != rows:  # blank lines
        Posting.objects.filter(pk=posting.pk).update(entry_count=result.rows)
    result.mode = "bulk"
    result.posting_id = posting.id
    mark = result.step("direct", mark)
    ledger_bulk_load_finish(cursor, bulk)
    return result.step("rebuild", mark)


def _ids_by_line(cursor) -> int:
    """For the bulk load: the id base that gives each row the id base + its line number, from a
    block reserved for lines 2 (the first after the header) to the last."""
    cursor.execute("SELECT max(line) FROM imp_rows")
    last_line = cursor.fetchone()[0]
    return ledger_ids_reserve(cursor, last_line - 1) - 1


def _ledger_foreign_keys(cursor) -> str:
    """The ledger's deferrable foreign keys in this schema, quoted for SET CONSTRAINTS."""
    cursor.execute(
        """SELECT quote_ident(n.nspname) || '.' || quote_ident(c.conname)
             FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
            WHERE c.conrelid = 'inventory_ledger'::regclass AND c.contype = 'f'
              AND c.condeferrable ORDER BY c.conname"""
    )
    return ", ".join(name for (name,) in cursor.fetchall())


# --- the parse pass: CSV → staging table --------------------------------------------------


def _stage(cursor, stream, odd_text: bool, plain: bool = False) -> int:
    """Parse the CSV and COPY its rows into imp_rows; returns how many. Header problems and a
    file with no rows raise here; row problems the parse finds (a malformed CSV, too many
    values, NUL characters) are kept in `cursor.import_problems` for _check. A plain file
    (file_digest) is split by _plain_cells, which reads it as the csv module does, twice as
    fast, and its rows are sent as COPY text lines, not one write_row call each."""
    problems = _Problems()
    cursor.import_problems = problems
    reader = csv.reader(stream)
    columns = _header(reader, problems)
    problems.raise_if_any()
    names = list(columns)  # header order; every known column, absent ones default to ''
    width = len(names)
    cursor.execute(sql.STAGING)
    cursor.execute(sql.FIXUPS)
    copy_sql = f"COPY imp_rows ({', '.join(names)}, line, bad) FROM STDIN"
    staged = malformed = 0
    previous_end = reader.line_num
    # The psycopg cursor: django-tenants has set its search_path to the tenant.
    with cursor.cursor.copy(copy_sql) as copy:
        if plain:
            staged, malformed = _stage_plain(copy.write, stream, previous_end, width, problems)
        else:
            write = copy.write_row
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                except csv.Error as err:
                    problems.add(previous_end + 1, None, f"the CSV is malformed: {err}")
                    malformed = 1
                    break
                line, previous_end = previous_end + 1, reader.line_num
                if not cells or cells == [""]:
                    continue  # blank line
                if len(cells) != width:
                    cells = _fit(line, cells, width, problems)
                    if cells is None:  # too many values: not checked further
                        write([""] * width + [line, 2])
                        staged += 1
                        continue
                values = [c.strip() for c in cells]
                bad = _odd_cells(line, values, names, problems) if odd_text else 0
                values.append(line)
                values.append(bad)
                write(values)
                staged += 1
    cursor.import_malformed = malformed
    if not staged and not problems:
        raise ValidationFailed(
            "The file has no ledger rows.", {"file": ["no rows after the header"]}
        )
    cursor.execute("ANALYZE imp_rows")
    return staged


def _plain_cells(raw: str) -> list[str]:
    """A line of a plain file (no quote, CR or NUL) as csv.reader reads it: split at commas."""
    return raw[:-1].split(",") if raw.endswith("\n") else raw.split(",")


TAB = "\t"


def _stage_plain(write, stream, line: int, width: int, problems: _Problems) -> tuple[int, int]:
    """_stage's loop for a plain file: the same rows, lines and problems, as COPY text.
    Returns (rows staged, 1 if the file is malformed: a cell over the csv module's limit)."""
    staged, lines, malformed = 0, [], 0
    too_many = "\t" * width  # width empty cells, then line and bad (2: not checked further)
    limit = csv.field_size_limit()
    for raw in stream:
        line += 1
        cells = _plain_cells(raw)
        if len(raw) > limit and any(len(c) > limit for c in cells):
            problems.add(
                line, None, f"the CSV is malformed: field larger than field limit ({limit})"
            )
            malformed = 1
            break
        if cells == [""]:
            continue  # blank line
        if len(cells) != width:
            cells = _fit(line, cells, width, problems)
            if cells is None:
                lines.append(f"{too_many}{line}\t2\n")
                staged += 1
                continue
        if "\\" in raw or "\t" in raw:
            cells = [c.strip().translate(COPY_ESCAPES) for c in cells]
        else:
            cells = [c.strip() for c in cells]
        lines.append(f"{TAB.join(cells)}\t{line}\t0\n")
        staged += 1
        if len(lines) >= 2000:
            write("".join(lines))
            lines.clear()
    write("".join(lines))
    return staged, malformed


def _fit(line: int, cells: list[str], width: int, problems: _Problems) -> list[str] | None:
    if len(cells) > width:
        if any(c.strip() for c in cells[width:]):
            problems.add(line, None, f"{len(cells)} values for {width} columns")
            return None
        return cells[:width]
    return cells + [""] * (width - len(cells))


def _odd_cells(line: int, values: list[str], names: list[str], problems: _Problems) -> int:
    """NUL characters (PostgreSQL text cannot hold them) and lone surrogates (nor encode them),
    found by the parse pass. NUL is reported and dropped and the row checked as usual; a row
    with a lone surrogate gets the row validation's messages here and is not checked further."""
    bad = 0
    for index, value in enumerate(values):
        if "\x00" in value:
            problems.add(line, names[index], "contains a NUL character")
            values[index] = value = value.replace("\x00", "")
            bad = 1
        if not utf8_encodable(value):
            bad = 2
    if bad == 2:
        rec = dict(zip(names, values, strict=True))
        _check_row(line, {c: rec.get(c, "") for c in sql.COLUMNS}, problems)
        for index, value in enumerate(values):
            if not utf8_encodable(value):  # stage a stand-in; the row is not imported anyway
                values[index] = value.encode("utf-8", "replace").decode("utf-8")
    return bad


# --- the checks: set-wise in SQL, then the Python rules on the flagged rows ---------------


def _check(cursor) -> None:
    """Raise ValidationFailed with the problems of the staged file (its first bad lines'), or
    return with imp_skus, imp_locations, imp_lots and imp_fixups ready for the insert."""
    parsed: _Problems = cursor.import_problems
    checked = _Problems()
    params = {
        "units": sql.UNITS,
        "kinds": sql.KINDS,
        "qty_shapes": sql.QTY_SHAPES,
        "time_shapes": sql.time_shapes(settings.TIME_ZONE == "UTC"),
    }
    for statement in sql.SUMMARIES:
        cursor.execute(statement, params)
    bad_lines = cursor.import_malformed
    cursor.execute(f"DECLARE imp_suspects NO SCROLL CURSOR FOR {sql.SUSPECTS}", params)
    while True:
        cursor.execute(f"FETCH {FETCH_SUSPECTS} FROM imp_suspects")
        batch = cursor.fetchall()
        if not batch:
            break
        fixups = []
        for values in batch:
            row = SimpleNamespace(**dict(zip(SUSPECT_FIELDS, values, strict=True)))
            before = checked.added
            fixup = _check_suspect(row, checked) if row.bad < 2 else None
            if row.bad or checked.added != before:
                bad_lines += 1
            elif fixup is not None:
                fixups.append(fixup)
        if fixups and not bad_lines:
            with cursor.cursor.copy(
                "COPY imp_fixups (line, occurred_at, expires_on) FROM STDIN"
            ) as copy:
                for fixup in fixups:
                    copy.write_row(fixup)
    cursor.execute("CLOSE imp_suspects")
    parsed.raise_if_any(bad_lines, then=checked)
    _check_balances_fit(cursor)


SUSPECT_FIELDS = ("line", "bad", *sql.COLUMNS) + (
    "item_unit",
    "def_line",
    "def_unit",
    "location_exists",
    "lot_exists",
    "lot_first_line",
    "time_odd",
    "expiry_odd",
)


def _check_suspect(row, problems: _Problems) -> tuple | None:
    """The Python rules on one flagged row, in the context SQL found for it (what the old
    in-memory pass knew when it reached this line). Returns the (line, occurred_at,
    expires_on) fixup of a good row whose date-time or expiry only Python could read."""
    rec = {c: getattr(row, c) for c in sql.COLUMNS}
    line = row.line
    checked, flagged = _check_row(line, rec, problems)
    sku, lot = rec["sku"], rec["lot"]
    items = {sku: SimpleNamespace(unit=row.item_unit)} if row.item_unit is not None else {}
    new_items = {}
    if row.def_line is not None and row.def_line < line:
        new_items[sku] = ("", row.def_unit)
    locations = {rec["location"]: True} if row.location_exists else {}
    existing_lots = {(sku, lot)} if row.lot_exists else set()
    new_lots = {}
    if row.lot_first_line is not None and row.lot_first_line < line:
        new_lots[(sku, lot)] = None
    before = problems.added
    expires = _check_catalog(
        line, rec, flagged, (items, locations, existing_lots), new_items, {}, new_lots, problems
    )
    if checked is None or problems.added != before:
        return None
    if row.time_odd or (row.expiry_odd and expires is not None):
        return (line, checked.occurred_at if row.time_odd else None, expires)
    return None


def _check_balances_fit(cursor) -> None:
    """The balance trigger adds each key's sum to its balance: refuse, on the last line of that
    key, a file whose sums the balance column cannot hold (instead of a numeric overflow)."""
    limit = _balances_may_overflow(cursor, cursor.import_rows)
    if limit is None:
        return
    problems = _Problems()
    cursor.execute(sql.BALANCES_BEYOND, {"limit": limit})
    lines = set()
    for sku, loc, lot, total, last_line in cursor.fetchall():
        lines.add(last_line)
        problems.add(
            last_line,
            "qty",
            f"the balance of {sku} at {loc}{f' lot {lot}' if lot else ''} would be {total}, "
            f"beyond what the balance table holds (less than {limit:,} in size)",
        )
    problems.raise_if_any(len(lines))


def _balances_may_overflow(cursor, rows: int) -> Decimal | None:
    """The balance column's limit if `rows` rows could take a key to it, else None (no
    balance table, an unbounded numeric, or too far: each row's |qty| is below
    10^MAX_INTEGER_DIGITS, so when even the largest balance plus every row at that bound stays
    below the limit, the file need not be summed per key; NUMERIC(38,6) balances leave 10^32)."""
    limit = balance_qty_limit()
    if limit is None:
        return None
    cursor.execute("SELECT coalesce(max(abs(qty_canonical)), 0) FROM inventory_balances")
    largest = cursor.fetchone()[0]
    if largest + rows * Decimal(10) ** MAX_INTEGER_DIGITS < limit:
        return None
    return limit


def _create_catalog(cursor, result: ImportResult) -> None:
    now = timezone.now()
    cursor.execute(sql.CREATE_ITEMS, {"now": now})
    result.items_created = cursor.rowcount
    cursor.execute(sql.CREATE_LOCATIONS)
    result.locations_created = cursor.rowcount
    cursor.execute(sql.CREATE_LOTS)
    result.lots_created = cursor.rowcount
    for statement in sql.RESOLVE_LEFTOVERS:
        cursor.execute(statement)


def _refuse_if_imported(key: str, batch_key: str | None) -> None:
    posting = Posting.objects.filter(idempotency_key=key).first()
    if posting is None:
        return
    what = f"Batch key {batch_key!r} was" if batch_key is not None else "This file was"
    raise AlreadyImported(
        f"{what} already imported on {posting.created_at:%Y-%m-%d %H:%M} UTC "
        f"({posting.entry_count} rows, posting {posting.id}, by {posting.recorded_by}); "
        "nothing was imported. Importing it again would add its rows a second time; "
        "use --force if that is what you want.",
        {"file": ["already imported"]},
    )


def _header(reader, problems: _Problems) -> dict[str, int]:
    """Column name → index, or problems on line 1."""
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        header = []
    names = [h.strip() for h in header]
    columns: dict[str, int] = {}
    for index, name in enumerate(names):
        shown = _shown(name)[:40]
        if name in columns:
            problems.add(
                1,
                shown,
                f"column '{shown}' appears twice (columns {columns[name] + 1} and {index + 1})",
            )
        elif name not in REQUIRED + OPTIONAL:
            problems.add(
                1,
                shown or str(index + 1),
                f"unknown column '{shown}'; allowed: {', '.join(REQUIRED + OPTIONAL)}",
            )
        else:
            columns[name] = index
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        problems.add(
            1, None, f"missing column(s): {', '.join(missing)} (required: {', '.join(REQUIRED)})"
        )
    return columns


def _check_row(line: int, rec: dict, problems: _Problems) -> tuple[CheckedRow | None, set[str]]:
    """The shared row validation; returns the row (or None) and the columns it flagged."""
    row = LedgerRowInput(
        item=rec["sku"],
        location=rec["location"],
        qty=rec["qty"],
        kind=rec["kind"],
        lot=rec.get("lot") or None,
        reference=rec.get("reference", ""),
        occurred_at=rec.get("occurred_at") or None,
    )
    try:
        return ledger_row_check(row), set()
    except ValidationFailed as err:
        flagged = set()
        for field, messages in err.fields.items():
            flagged.add(COLUMN_OF.get(field, field))
            for message in messages:
                problems.add(line, COLUMN_OF.get(field, field), message)
        return None, flagged


def _check_catalog(line, rec, flagged, catalog, new_items, new_locations, new_lots, problems):
    """Items, locations and lots the file names: existing ones must agree, new ones must be
    valid (the same code rule as the API's item_create). Columns the row check already
    flagged are not reported twice. Returns the lot's expiry date, if the row gives one."""
    items, locations, existing_lots = catalog
    expires = None
    sku, loc_code, unit = rec["sku"], rec["location"], rec.get("unit", "")
    sku = "" if "sku" in flagged else sku
    loc_code = "" if "location" in flagged else loc_code
    for column, max_length in (
        ("item_name", NAME_MAX),
        ("location_name", NAME_MAX),
        ("site", SITE_MAX),
    ):
        problem = text_problem(rec.get(column, ""), max_length=max_length, what=column)
        if problem:
            problems.add(line, column, problem)
    if sku in items:
        if unit and unit != items[sku].unit:
            problems.add(
                line, "unit", f"{unit!r} differs from item {sku}'s unit {items[sku].unit!r}"
            )
    elif sku:
        if sku in new_items:
            if unit and unit != new_items[sku][1]:
                problems.add(
                    line, "unit", f"item {sku!r} has unit {new_items[sku][1]!r} on an earlier line"
                )
        elif code_problem(sku):
            problems.add(line, "sku", f"new item '{_shown(sku)}': {code_problem(sku)}")
        elif unit not in Unit.values:
            problems.add(
                line, "unit", f"new item {sku!r} needs a unit: one of {', '.join(Unit.values)}"
            )
        else:
            new_items[sku] = ((rec.get("item_name") or sku)[:NAME_MAX], unit)
    if loc_code and loc_code not in locations and loc_code not in new_locations:
        if code_problem(loc_code):
            problems.add(
                line, "location", f"new location '{_shown(loc_code)}': {code_problem(loc_code)}"
            )
        else:
            new_locations[loc_code] = (
                (rec.get("location_name") or loc_code)[:NAME_MAX],
                rec.get("site", "")[:SITE_MAX],
            )
    lot = "" if "lot" in flagged else rec.get("lot", "")
    if lot and sku:
        expires_raw = rec.get("lot_expires_on", "")
        if expires_raw:
            expires, problem = expiry_date_problem(expires_raw)
            if problem:
                problems.add(line, "lot_expires_on", problem)
        is_new = (sku, lot) not in new_lots and (sku, lot) not in existing_lots
        if is_new and code_problem(lot):
            problems.add(line, "lot", f"new lot '{_shown(lot)}': {code_problem(lot)}")
        new_lots.setdefault((sku, lot), expires)
    return expires


def _posting_create(key, digest, count, source, batch_key, force) -> Posting:
    if force and Posting.objects.filter(idempotency_key=key).exists():
        key = None  # a forced re-import: the first import keeps the key
    try:
        with transaction.atomic():
            return Posting.objects.create(
                idempotency_key=key,
                request_hash=digest,
                entry_count=count,
                recorded_by=f"import:{source}{' (forced)' if force else ''}"[:200],
            )
    except IntegrityError:
        # Another import of the same file committed while we checked (we waited for it).
        _refuse_if_imported(key, batch_key)
        raise


def _shown(text: str) -> str:
    """For messages: NUL, control and non-ASCII characters escaped (\\x00, \\uff26)."""
    return ascii(text)[1:-1][:64]
