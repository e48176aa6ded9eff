"""Import of an existing ledger from CSV (an organisation moving over from the old system).

All rows are checked before anything is written, with the same row validation as the API
(inventory/services/ledger_rows.py); every problem is reported as "line N, column C: what is
wrong" and nothing is written. A good file goes in as one transaction: missing items, locations
and lots are created, then the ledger rows are loaded with COPY (the balance trigger fires once).

Idempotent: each import is a `Posting` whose idempotency key is the file's SHA-256 (or a batch
key the user gives), and its ledger rows point at it. The same file again is refused unless
forced, so a re-run never doubles the stock; the unique key also settles two imports of one
file racing each other.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import psycopg
from django.db import DataError, IntegrityError, transaction

from inventory.balances import balance_qty_limit
from inventory.models import Balance, Item, Location, Lot, Posting, Unit
from inventory.services.catalog import code_problem, expiry_date_problem
from inventory.services.errors import AlreadyImported, ValidationFailed
from inventory.services.ledger_copy import ledger_rows_copy
from inventory.services.ledger_rows import (
    CheckedRow,
    LedgerRowInput,
    ledger_row_check,
    text_problem,
)
from inventory.services.stock_policy import refusal_from

REQUIRED = ("sku", "location", "qty", "kind")
OPTIONAL = (
    "item_name",
    "unit",
    "location_name",
    "site",
    "lot",
    "lot_expires_on",
    "reference",
    "occurred_at",
)
MAX_ERRORS_REPORTED = 50
# Row fields (ledger_rows) → the CSV column that holds them.
COLUMN_OF = {"item": "sku", "location": "location", "lot": "lot", "qty": "qty", "kind": "kind"}
NAME_MAX, SITE_MAX, BATCH_KEY_MAX = 200, 100, 150
NUMERIC_OUT_OF_RANGE = "22003"


@dataclass
class ImportResult:
    rows: int = 0
    items_created: int = 0
    locations_created: int = 0
    lots_created: int = 0
    seconds: float = 0.0
    posting_id: int | None = None
    sha256: str = ""


@dataclass
class _Row:
    line: int
    row: CheckedRow


class _Problems:
    """Problems keyed "line N, column C" (or "line N"), in file order."""

    def __init__(self):
        self.by_place: dict[str, list[str]] = {}

    def add(self, line: int, column: str | None, message: str) -> None:
        place = f"line {line}, column {column}" if column else f"line {line}"
        self.by_place.setdefault(place, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.by_place)

    def raise_if_any(self) -> None:
        if not self.by_place:
            return
        lines = {place.split(",")[0] for place in self.by_place}
        shown = dict(list(self.by_place.items())[:MAX_ERRORS_REPORTED])
        raise ValidationFailed(f"{len(lines)} line(s) are invalid; nothing was imported.", shown)


def import_key(*, text: str, batch_key: str | None = None) -> tuple[str, str]:
    """(idempotency key, SHA-256 of the content) for an import."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    if batch_key is None:
        return f"import:sha256:{digest}", digest
    problem = text_problem(batch_key, max_length=BATCH_KEY_MAX, required=True, what="batch key")
    if problem:
        raise ValidationFailed(f"Invalid batch key: {problem}.", {"batch_key": [problem]})
    return f"import:batch:{batch_key.strip()}", digest


def ledger_import_csv(
    *, text: str, source: str = "csv", batch_key: str | None = None, force: bool = False
) -> ImportResult:
    """Import `text` (a CSV file's content) into the current tenant, all or nothing. Refuses a
    file (by SHA-256) or batch key imported before unless `force`."""
    started = time.monotonic()
    key, digest = import_key(text=text, batch_key=batch_key)
    if not force:
        _refuse_if_imported(key, batch_key)

    problems = _Problems()
    reader = csv.reader(io.StringIO(text, newline=""))
    columns = _header(reader, problems)
    problems.raise_if_any()

    items = {i.sku: i for i in Item.objects.all()}
    locations = {loc.code: loc for loc in Location.objects.all()}
    catalog = (items, locations, set(Lot.objects.values_list("item__sku", "code")))
    new_items: dict[str, tuple[str, str]] = {}
    new_locations: dict[str, tuple[str, str]] = {}
    new_lots: dict[tuple[str, str], date | None] = {}
    rows: list[_Row] = []

    previous_end = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            problems.add(previous_end + 1, None, f"the CSV is malformed: {err}")
            break
        line, previous_end = previous_end + 1, reader.line_num
        if not cells or cells == [""]:
            continue  # blank line
        rec = _record(line, cells, columns, problems)
        if rec is None:
            continue
        checked, flagged = _check_row(line, rec, problems)
        _check_catalog(line, rec, flagged, catalog, new_items, new_locations, new_lots, problems)
        if checked is not None:
            rows.append(_Row(line, checked))

    if not rows and not problems:
        raise ValidationFailed(
            "The file has no ledger rows.", {"file": ["no rows after the header"]}
        )
    problems.raise_if_any()
    _check_balances_fit(rows, problems)
    problems.raise_if_any()

    result = ImportResult(rows=len(rows), sha256=digest)
    try:
        with transaction.atomic():
            posting = _posting_create(key, digest, len(rows), source, batch_key, force)
            result.posting_id = posting.id
            _create_catalog(items, locations, new_items, new_locations, new_lots, result)
            lot_ids = {
                (lot.item_id, lot.code): lot.id
                for lot in Lot.objects.filter(item__sku__in={r.row.item for r in rows if r.row.lot})
            }
            _copy_rows(rows, items, locations, lot_ids, posting.id, source)
    except (DataError, psycopg.DataError) as err:
        # COPY runs on the raw psycopg cursor, so its errors are psycopg's, not Django's.
        sqlstate = getattr(err, "sqlstate", None) or getattr(err.__cause__, "sqlstate", None)
        if sqlstate == NUMERIC_OUT_OF_RANGE:
            raise ValidationFailed(
                "A balance would overflow; nothing was imported.",
                {"file": ["the resulting balances are too large for the balance table"]},
            ) from None
        raise
    except (IntegrityError, psycopg.IntegrityError) as err:
        # The no-negative stock policy refused the COPY (issue 14): a 409 naming each key.
        refusal = refusal_from(err)
        if refusal is None:
            raise
        raise refusal from None
    result.seconds = time.monotonic() - started
    return result


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


def _record(line: int, cells: list[str], columns: dict[str, int], problems) -> dict | None:
    if len(cells) > len(columns) and any(c.strip() for c in cells[len(columns) :]):
        problems.add(line, None, f"{len(cells)} values for {len(columns)} columns")
        return None
    rec = {}
    for name, index in columns.items():
        value = cells[index].strip() if index < len(cells) else ""
        if "\x00" in value:
            # PostgreSQL text cannot hold NUL; COPY would fail with a traceback.
            problems.add(line, name, "contains a NUL character")
            value = value.replace("\x00", "")
        rec[name] = value
    return rec


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
    flagged are not reported twice."""
    items, locations, existing_lots = catalog
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
        expires = None
        if expires_raw:
            expires, problem = expiry_date_problem(expires_raw)
            if problem:
                problems.add(line, "lot_expires_on", problem)
        is_new = (sku, lot) not in new_lots and (sku, lot) not in existing_lots
        if is_new and code_problem(lot):
            problems.add(line, "lot", f"new lot '{_shown(lot)}': {code_problem(lot)}")
        new_lots.setdefault((sku, lot), expires)


def _check_balances_fit(rows: list[_Row], problems: _Problems) -> None:
    """The balance trigger adds each key's sum to its balance: refuse, on the last line of that
    key, a file whose sums the balance column cannot hold (instead of a numeric overflow)."""
    limit = balance_qty_limit()
    if limit is None:
        return  # no balance table (rolled back) or an unbounded numeric
    totals: dict[tuple, Decimal] = {}
    last_line: dict[tuple, int] = {}
    for r in rows:
        key = (r.row.item, r.row.location, r.row.lot or "")
        totals[key] = totals.get(key, Decimal(0)) + r.row.qty
        last_line[key] = r.line
    existing = Balance.objects.filter(item__sku__in={k[0] for k in totals}).values_list(
        "item__sku", "location__code", "lot__code", "qty_canonical"
    )
    for sku, loc, lot, qty in existing:
        if (sku, loc, lot or "") in totals:
            totals[(sku, loc, lot or "")] += qty
    for key, total in totals.items():
        if abs(total) >= limit:
            sku, loc, lot = key
            problems.add(
                last_line[key],
                "qty",
                f"the balance of {sku} at {loc}{f' lot {lot}' if lot else ''} would be {total}, "
                f"beyond what the balance table holds (less than {limit:,} in size)",
            )


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


def _create_catalog(items, locations, new_items, new_locations, new_lots, result) -> None:
    created = Item.objects.bulk_create(
        [Item(sku=s, name=n, unit=u) for s, (n, u) in new_items.items()]
    )
    items.update({i.sku: i for i in created})
    created_locs = Location.objects.bulk_create(
        [Location(code=c, name=n, site=s) for c, (n, s) in new_locations.items()]
    )
    locations.update({loc.code: loc for loc in created_locs})
    existing_lots = {
        (lot.item_id, lot.code)
        for lot in Lot.objects.filter(item__sku__in={s for s, _ in new_lots})
    }
    to_create = [
        Lot(item=items[s], code=c, expires_on=e)
        for (s, c), e in new_lots.items()
        if (items[s].id, c) not in existing_lots
    ]
    Lot.objects.bulk_create(to_create)
    result.items_created = len(created)
    result.locations_created = len(created_locs)
    result.lots_created = len(to_create)


def _copy_rows(rows, items, locations, lot_ids, posting_id: int, source: str) -> None:
    def resolved():
        for r in rows:
            item = items[r.row.item]
            yield (
                item.id,
                locations[r.row.location].id,
                lot_ids[(item.id, r.row.lot)] if r.row.lot else None,
                r.row.qty,
                r.row.kind,
                r.row.reference,
                r.row.occurred_at,
            )

    ledger_rows_copy(resolved(), recorded_by=f"import:{source}", posting_id=posting_id)


def _shown(text: str) -> str:
    """For messages: NUL, control and non-ASCII characters escaped (\\x00, \\uff26)."""
    return ascii(text)[1:-1][:64]
