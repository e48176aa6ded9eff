"""One validation of a ledger row, for every door that writes the ledger: the posting service
(the HTTP API), `import_ledger` and the demo loader.

Contract (stable; the API layer calls it with typed values):

- `LedgerRowInput` is one movement as a caller sends it: codes (not ids), the quantity as a
  decimal string or Decimal, an optional lot code, reference and occurrence time.
- `ledger_row_check(row, prefix="")` checks everything that needs no database (types, text,
  quantity, kind, time) and returns a `CheckedRow`, or raises `ValidationFailed` whose `fields`
  hold every problem of the row keyed `prefix + field` (`entries[2].qty`). Resolving codes to
  items, locations and lots is the caller's job (posting looks existing ones up; the importer
  may create them).
- `parse_quantity(raw, field=...)`, `parse_timestamp(raw, field=...)` (also for query strings
  such as `since=`), `parse_occurred_at(raw, field=...)` (None/"" means now), `parse_text(...)`
  and `parse_code(...)` raise `ValidationFailed({field: [message]})`. The `*_problem` functions
  return the message (or None) instead, for loops that collect many problems.

Rules: quantities are ASCII `-?digits(.digits)?`, 0 < |q| < 10^12, at most 6 decimals (the ledger
column is NUMERIC(18,6)); times are ISO 8601, real dates, with a UTC offset PostgreSQL's
timestamptz accepts (|offset| <= 15:59); text is a str (never coerced from a bool or list), with
no NUL character and no lone surrogate (neither can be stored in PostgreSQL text or encoded as
UTF-8), within the column's length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from inventory.models import MovementKind
from inventory.services import quantities
from inventory.services.errors import ValidationFailed
from inventory.services.quantities import type_name

# MovementKind.values is rebuilt on every access (slow in a 100,000-row loop).
KINDS = frozenset(MovementKind.values)
KINDS_HINT = ", ".join(MovementKind.values)
ROW_FIELDS = ("item", "location", "qty", "kind", "lot", "reference", "occurred_at")
CODE_MAX = 64  # Item.sku, Location.code, Lot.code
REFERENCE_MAX = 200
# PostgreSQL's timestamptz refuses offsets beyond 15:59 (59 seconds included).
MAX_UTC_OFFSET = timedelta(hours=15, minutes=59, seconds=59)
TIMESTAMP_TEXT_MAX = 64
TIMESTAMP_HINT = "use an ISO 8601 date-time, e.g. 2026-11-24T09:30:00Z"
OFFSET_HINT = "the UTC offset must be between -15:59 and +15:59"
# A trailing UTC offset after a time: T09:30+99:00, T09:30:00-2400.
OFFSET_RE = re.compile(r"[T ][0-9:.]+[+-](?P<hours>[0-9]{2}):?(?P<minutes>[0-9]{2})?$")


@dataclass(frozen=True)
class LedgerRowInput:
    """One movement as a caller sends it (before any check)."""

    item: str
    location: str
    qty: str | Decimal
    kind: str
    lot: str | None = None
    reference: str = ""
    occurred_at: str | datetime | None = None

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in ROW_FIELDS}


@dataclass(frozen=True)
class CheckedRow:
    """A row whose every field is well formed; codes are not yet resolved."""

    item: str
    location: str
    qty: Decimal
    kind: str
    lot: str | None
    reference: str
    occurred_at: datetime


# --- single values: message or None -------------------------------------------------------


def text_problem(raw, *, max_length: int, required: bool = False, what: str = "text") -> str | None:
    """Why `raw` cannot be stored as text, or None. `what` names it in the message."""
    if not isinstance(raw, str):
        return f"{what} must be a string, not {type_name(raw)}"
    if required and not raw.strip():
        return f"{what} is required"
    if len(raw) > max_length:
        return f"{what} has at most {max_length} characters ({len(raw)} given)"
    if "\x00" in raw:
        return f"{what} must not contain NUL characters"
    if not utf8_encodable(raw):
        return f"{what} must not contain lone surrogates (invalid Unicode)"
    return None


def quantity_problem(raw, *, allow_zero: bool = False) -> tuple[Decimal | None, str | None]:
    try:
        return quantities.parse_quantity(raw, allow_zero=allow_zero), None
    except ValueError as err:
        return None, str(err)


def timestamp_problem(raw) -> tuple[datetime | None, str | None]:
    """An aware datetime from ISO 8601 text (or a datetime), or why not. Naive values are taken
    in the default time zone."""
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, str):
        if len(raw) > TIMESTAMP_TEXT_MAX or not raw.isascii() or not raw.isprintable():
            # Non-ASCII digits would pass Django's \d-based parser; NUL and control characters
            # have no place in a date-time.
            return None, TIMESTAMP_HINT
        offset = OFFSET_RE.search(raw)
        if offset and (int(offset["hours"]), int(offset["minutes"] or 0)) > (15, 59):
            return None, OFFSET_HINT
        try:
            value = parse_datetime(raw)
        except ValueError:
            # Well formed but impossible: 2026-02-30, month 13, 25:00, offset +99:00.
            return None, f"{raw[:40]!r} is not a real date-time ({TIMESTAMP_HINT[4:]})"
        if value is None:
            return None, TIMESTAMP_HINT
    else:
        return None, f"a date-time must be a string, not {type_name(raw)}"
    if timezone.is_naive(value):
        try:
            value = timezone.make_aware(value, timezone.get_default_timezone())
        except (ValueError, OverflowError):
            return None, "the date-time is out of range"
    offset = value.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        return None, OFFSET_HINT
    try:
        value.astimezone(UTC)
    except (ValueError, OverflowError):
        return None, "the date-time is out of range"
    return value, None


# --- single values: raise ValidationFailed ------------------------------------------------


def parse_quantity(raw, *, field: str = "qty", allow_zero: bool = False) -> Decimal:
    value, problem = quantity_problem(raw, allow_zero=allow_zero)
    if problem:
        raise ValidationFailed(f"Invalid {field}: {problem}.", {field: [problem]})
    return value


def parse_timestamp(raw, *, field: str = "occurred_at") -> datetime:
    """ISO 8601 text or a datetime → an aware datetime PostgreSQL can store; for `occurred_at`
    and for query strings (`since=`, `until=`)."""
    value, problem = timestamp_problem(raw)
    if problem:
        raise ValidationFailed(f"Invalid {field}: {problem}.", {field: [problem]})
    return value


def parse_occurred_at(raw, *, field: str = "occurred_at") -> datetime:
    """Like parse_timestamp, but None or "" means now."""
    if raw is None or raw == "":
        return timezone.now()
    return parse_timestamp(raw, field=field)


def parse_text(raw, *, field: str, max_length: int, required: bool = False) -> str:
    problem = text_problem(raw, max_length=max_length, required=required, what=field)
    if problem:
        raise ValidationFailed(f"Invalid {field}: {problem}.", {field: [problem]})
    return raw


def parse_code(raw, *, field: str) -> str:
    """An item SKU, location code or lot code to look up (1-64 characters, no NUL)."""
    return parse_text(raw, field=field, max_length=CODE_MAX, required=True).strip()


# --- a whole row ----------------------------------------------------------------------------


def ledger_row_check(row: LedgerRowInput | Mapping, *, prefix: str = "") -> CheckedRow:
    """Check one row; raise ValidationFailed with every problem keyed `prefix + field`."""
    errors: dict[str, list[str]] = {}

    def fail(field: str, message: str) -> None:
        errors.setdefault(f"{prefix}{field}", []).append(message)

    if isinstance(row, LedgerRowInput):
        data = row.as_dict()
    elif isinstance(row, Mapping):
        data = dict(row)
        unknown = [k for k in data if k not in ROW_FIELDS]
        if unknown:
            shown = ", ".join(sorted(_printable(k) for k in unknown))
            fail("entry", f"unknown field(s): {shown}")
    else:
        raise ValidationFailed(
            "Each entry must be an object.", {f"{prefix}entry": ["each entry must be an object"]}
        )

    codes = {}
    for field, what in (("item", "an item SKU"), ("location", "a location code")):
        raw = data.get(field)
        if raw is None or raw == "":
            fail(field, f"{what} is required")
            continue
        problem = text_problem(raw, max_length=CODE_MAX, required=True, what=field)
        if problem:
            fail(field, problem)
        else:
            codes[field] = raw.strip()

    lot = data.get("lot")
    if lot == "":
        lot = None
    if lot is not None:
        problem = text_problem(lot, max_length=CODE_MAX, what="lot")
        if problem:
            fail("lot", problem)
        else:
            lot = lot.strip() or None

    qty, problem = quantity_problem(data.get("qty"))
    if problem:
        fail("qty", problem)

    kind = data.get("kind")
    if kind is None or kind == "":
        fail("kind", f"a movement kind is required: one of {KINDS_HINT}")
    elif not isinstance(kind, str) or kind not in KINDS:
        shown = _printable(kind)[:32] if isinstance(kind, str) else type_name(kind)
        fail("kind", f"unknown movement kind '{shown}'; use one of {KINDS_HINT}")

    reference = data.get("reference")
    if reference is None:
        reference = ""
    problem = text_problem(reference, max_length=REFERENCE_MAX, what="reference")
    if problem:
        fail("reference", problem)

    raw_time = data.get("occurred_at")
    occurred_at = None
    if raw_time is None or raw_time == "":
        occurred_at = timezone.now()
    else:
        occurred_at, problem = timestamp_problem(raw_time)
        if problem:
            fail("occurred_at", problem)

    if errors:
        raise ValidationFailed("The entry is invalid.", errors)
    return CheckedRow(
        item=codes["item"],
        location=codes["location"],
        qty=qty,
        kind=kind,
        lot=lot,
        reference=reference,
        occurred_at=occurred_at,
    )


def utf8_encodable(text: str) -> bool:
    """False for text with lone surrogates (PostgreSQL text cannot hold them)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    """For messages: never echo a surrogate or NUL back (it would break the JSON encoder or
    the terminal)."""
    return ascii(str(text))[1:-1]
