"""The balance export (issue 18.3): the owner's filtered balance view as CSV, for the page's
stream, the background job's file and any other caller.

PostgreSQL writes the CSV (`COPY (SELECT …) TO STDOUT WITH (FORMAT csv)`): the text cells made
inert, the quantities and timestamps formatted, quoting and escaping, all in SQL. Python only
turns each row's LF into the CRLF csv.writer wrote (PostgreSQL sends one CopyData message
per row, so the row ends are known without parsing) and joins rows into blocks. One model
instance per row ran at ~10,000 rows/s and a 198,659-row file hit gunicorn's timeout; this runs
at several hundred thousand (docs/PERFORMANCE.md, "CSV export").

The bytes are those of the former Python export (csv.writer over `csv_text`, `fmt_qty`,
`isoformat()`; tests/inventory/test_export.py keeps that as the reference): same columns, same
rows, same order (with the balance id as the last tie-breaker, so two runs give one file)."""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

import psycopg
from django.conf import settings
from django.db import connection
from django.db.models import F, Func, Q, TextField
from psycopg import sql as pgsql

from inventory.forms import SORTS, BalanceQuery
from inventory.selectors import balances_queryset, with_qty_as_of

HEADER = ("sku", "item", "unit", "location", "lot", "qty", "updated_at")
HEADER_LINE = (",".join(HEADER) + "\r\n").encode()

# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...) sends the
# data away, =cmd|... runs programs): OWASP's CSV injection list.
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

BLOCK_BYTES = 64 * 1024  # what one yield of the stream (one write of the file) holds
PROGRESS_ROWS = 50_000  # the job reports (and beats) this often


def csv_text(value: str) -> str:
    """A text cell made inert: a leading single quote makes spreadsheets show it as text. Only for
    text written by users (codes, names); quantities stay numbers (-5.000000 is not a formula).
    `_CsvText` is its SQL twin, which the export runs."""
    return "'" + value if value.startswith(CSV_FORMULA_START) else value


def balance_rows(query: BalanceQuery):
    """Balance rows with `qty_at`: the current balance, or the one as of `query.as_of` (which
    the sign filter and the quantity sort then use). The page lists it, the export writes it."""
    qs = with_qty_as_of(balances_queryset(query.filters), query.as_of)
    if query.q:
        qs = qs.filter(Q(item__sku__icontains=query.q) | Q(item__name__icontains=query.q))
    if query.sign == "zero":
        qs = qs.filter(qty_at=0)
    elif query.sign == "negative":
        qs = qs.filter(qty_at__lt=0)
    elif query.sign == "positive":
        qs = qs.filter(qty_at__gt=0)
    return qs.order_by(*(k.replace("qty_canonical", "qty_at") for k in SORTS[query.sort]))


class _CsvText(Func):
    """csv_text in SQL. Empty text becomes NULL: COPY writes NULL as nothing and '' as `""`,
    csv.writer wrote nothing for both."""

    _starts = ", ".join(f"chr({ord(c)})" for c in CSV_FORMULA_START)
    template = (
        f"CASE WHEN left(%(expressions)s, 1) IN ({_starts}) THEN '''' || %(expressions)s "
        "ELSE NULLIF(%(expressions)s, '') END"
    )
    output_field = TextField()


class _Qty(Func):
    """fmt_qty in SQL: six places, never an exponent (numeric's text never has one)."""

    template = "round(%(expressions)s, 6)::text"
    output_field = TextField()


class _IsoUtc(Func):
    """datetime.isoformat() of the UTC value Django reads: microseconds only when not zero."""

    template = (
        "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
        "CASE WHEN date_trunc('second', %(expressions)s) = %(expressions)s THEN '' "
        "ELSE to_char(%(expressions)s AT TIME ZONE 'UTC', '.US') END || '+00:00'"
    )
    output_field = TextField()


def _copy_sql(query: BalanceQuery) -> tuple[str, tuple]:
    qs = balance_rows(query)
    qs = qs.order_by(*qs.query.order_by, "pk").annotate(
        x_sku=_CsvText(F("item__sku")),
        x_name=_CsvText(F("item__name")),
        x_unit=_CsvText(F("item__unit")),
        x_location=_CsvText(F("location__code")),
        x_lot=_CsvText(F("lot__code")),
        x_qty=_Qty(F("qty_at")),
        x_updated=_IsoUtc(F("updated_at")),
    )
    qs = qs.values_list("x_sku", "x_name", "x_unit", "x_location", "x_lot", "x_qty", "x_updated")
    sql, params = qs.query.sql_with_params()
    return f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params


def balance_export_count(query: BalanceQuery) -> int:
    """How many rows the export of `query` holds now (the page's threshold, the job's total)."""
    return balance_rows(query).count()


def _rows(query: BalanceQuery, conn=None) -> Iterator[bytes]:
    """Each CSV row as PostgreSQL sends it, CRLF-terminated, in the current schema (on
    `conn`, a psycopg connection, when given). One snapshot: COPY is one statement."""
    sql, params = _copy_sql(query)
    if conn is not None:
        with conn.cursor() as cursor, cursor.copy(sql, params) as copy:
            yield from _crlf(copy)
        return
    # psycopg's own cursor: Django's DEBUG wrapper takes no parameters for copy().
    with connection.cursor() as cursor, cursor.cursor.copy(sql, params) as copy:
        yield from _crlf(copy)


def _crlf(copy) -> Iterator[bytes]:
    for data in copy:
        row = bytes(data)
        if not row.endswith(b"\n"):  # never seen: one row per message is PostgreSQL's way
            raise RuntimeError("COPY sent a partial row; the export stops rather than guess")
        yield row[:-1] + b"\r\n"


def balance_export_blocks(
    query: BalanceQuery, *, on_rows: Callable[[int], None] | None = None, conn=None
) -> Iterator[bytes]:
    """The whole CSV (header first) in blocks of about BLOCK_BYTES, for a stream or a file.
    `on_rows(n)` is told the rows written so far after each block. Runs in the current schema,
    on Django's connection or `conn`."""
    block, size, rows = [HEADER_LINE], len(HEADER_LINE), 0
    for row in _rows(query, conn):
        block.append(row)
        size += len(row)
        rows += 1
        if size >= BLOCK_BYTES:
            yield b"".join(block)
            block, size = [], 0
            if on_rows is not None:
                on_rows(rows)
    if block:
        yield b"".join(block)
    if on_rows is not None:
        on_rows(rows)


@contextmanager
def _own_connection() -> Iterator[psycopg.Connection | None]:
    """A session of its own in the current schema, for a COPY that runs while its caller keeps
    using Django's connection: a connection in the middle of a COPY can send nothing else (the
    job's progress reports waited for the COPY, which waited for them to read it). None inside
    a transaction (a test's): only its own connection sees what it wrote."""
    if connection.in_atomic_block:
        yield None
        return
    params = connection.get_connection_params()
    for django_only in ("cursor_factory", "context"):
        params.pop(django_only, None)
    schema = getattr(connection, "schema_name", None) or "public"
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(pgsql.SQL("SET search_path TO {}, public").format(pgsql.Identifier(schema)))
        conn.execute("SET TIME ZONE 'UTC'")  # as Django's sessions (USE_TZ)
        yield conn


# --- the background export's file (inventory/jobs.py runs it) ------------------------------------

FILE_NAME = re.compile(r"export-[0-9a-f]{32}\.csv")
PART_SUFFIX = ".part"


def export_dir(schema_name: str) -> Path:
    """The organisation's private folder of finished exports (outside the static files)."""
    return Path(settings.EXPORT_DIR) / schema_name


@dataclass(frozen=True)
class ExportFile:
    file: str  # name in export_dir(schema)
    rows: int
    bytes: int
    sha256: str
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def balance_export_file(
    *,
    schema_name: str,
    query: BalanceQuery,
    progress: Callable[[int, int, str], None] | None = None,
) -> ExportFile:
    """Write the export of `query` (the current schema's) to a file of its own. It is written
    as `.<name>.part` and renamed to its name only once complete and on disk, so a file under
    its final name is always whole; the caller records rows, size and SHA-256 (the job's
    result), which the download checks. A process killed midway leaves only a `.part`, which
    nothing serves and the sweep removes."""
    folder = export_dir(schema_name)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"export-{uuid.uuid4().hex}.csv"
    part = folder / f".{name}{PART_SUFFIX}"
    total = balance_export_count(query)
    report = progress or (lambda done, total, message: None)
    digest, size, written = hashlib.sha256(), 0, [0]
    last = [None]

    live = [False]  # reports may go out while the COPY runs (it has a session of its own)

    def on_rows(rows: int) -> None:
        # After the first block (the page learns the total), then every PROGRESS_ROWS rows.
        written[0] = rows
        if live[0] and (last[0] is None or rows - last[0] >= PROGRESS_ROWS):
            last[0] = rows
            report(rows, max(total, rows), f"{rows} of {max(total, rows)} rows")

    started = time.monotonic()
    try:
        with _own_connection() as conn, open(part, "wb") as out:
            # On Django's connection, no report until the COPY is over (see _own_connection).
            live[0] = conn is not None
            for block in balance_export_blocks(query, on_rows=on_rows, conn=conn):
                out.write(block)
                digest.update(block)
                size += len(block)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, folder / name)
        _fsync_dir(folder)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    rows = written[0]
    report(rows, rows, f"{rows} rows written")
    return ExportFile(name, rows, size, digest.hexdigest(), round(time.monotonic() - started, 3))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _export_path(schema_name: str, result: dict) -> Path | None:
    name = str(result.get("file") or "")
    return export_dir(schema_name) / name if FILE_NAME.fullmatch(name) else None


def export_file_open(schema_name: str, result: dict) -> BinaryIO | None:
    """The finished file a succeeded run's result names, open for reading, if it is there whole
    (its size the recorded one; checked on the open file, so a sweep meanwhile cannot swap it).
    None when there is nothing to serve."""
    path = _export_path(schema_name, result)
    if path is None:
        return None
    try:
        handle = open(path, "rb")  # noqa: SIM115 - the response closes it
    except FileNotFoundError:
        return None
    if os.fstat(handle.fileno()).st_size != result.get("bytes"):
        handle.close()
        return None
    return handle


def export_file_ready(schema_name: str, job) -> bool:
    """Whether the run's download would serve a file (the status page shows the link then)."""
    if job.status != "succeeded":
        return False
    path = _export_path(schema_name, job.result)
    try:
        return path is not None and path.stat().st_size == job.result.get("bytes")
    except FileNotFoundError:
        return False


def exports_sweep(*, now: float | None = None, kept_names: set[str] | None = None) -> list[str]:
    """Remove export files older than EXPORT_MAX_AGE_HOURS, `.part` files no writer has touched
    for EXPORT_PART_STALE_SECONDS (their process died), and finished files no succeeded run
    names (`kept_names`: the process died between the rename and the record) once as stale.
    Returns the paths removed."""
    now = time.time() if now is None else now
    max_age = timedelta(hours=settings.EXPORT_MAX_AGE_HOURS).total_seconds()
    stale = float(settings.EXPORT_PART_STALE_SECONDS)
    root = Path(settings.EXPORT_DIR)
    removed = []
    if not root.is_dir():
        return removed
    for path in sorted(root.glob("*/*")):
        if not path.is_file():
            continue
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:
            continue
        is_part = path.name.endswith(PART_SUFFIX)
        orphan = kept_names is not None and not is_part and path.name not in kept_names
        if age > max_age or ((is_part or orphan) and age > stale):
            path.unlink(missing_ok=True)
            removed.append(str(path))
    return removed
