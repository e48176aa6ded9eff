"""Parsing of quantities: exact decimals in canonical units, as the ledger column NUMERIC(18,6)
holds them. One rule for every door (API, import, demo): see inventory/services/ledger_rows.py.

Text must be plain ASCII `-?digits(.digits)?`: no exponent ("1e999999999" would overflow
Python's decimal context or, as "-1e-999999999", pass Python and fail in PostgreSQL), no "+",
no "_" (Python's Decimal takes "1_000"), no spaces, no Arabic-Indic or full-width digits
(Python's Decimal takes those too)."""

from __future__ import annotations

import math
import re
from decimal import Decimal

MAX_DECIMALS = 6
MAX_DIGITS = 18
MAX_INTEGER_DIGITS = MAX_DIGITS - MAX_DECIMALS  # |qty| < 10**12
# Long enough for any leading zeros a spreadsheet may add, short enough that a 2 MB string
# never reaches the regex.
MAX_TEXT_LENGTH = 40
# [0-9], never \d: \d matches every Unicode digit.
QTY_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def parse_quantity(raw, *, allow_zero: bool = False) -> Decimal:
    """Return the quantity as a Decimal or raise ValueError saying what is wrong with it.

    Accepts a str of the form above, an int, or a finite Decimal (JSON parsed with
    parse_float=Decimal, typed API values); a float only if it round-trips as written."""
    if isinstance(raw, bool) or raw is None or raw == "":
        raise ValueError("a quantity is required (a decimal number)")
    if isinstance(raw, str):
        value = _from_text(raw)
    elif isinstance(raw, int):
        value = Decimal(raw)
    elif isinstance(raw, float):
        if math.isnan(raw):
            raise ValueError("NaN is not a quantity")
        if math.isinf(raw):
            raise ValueError("an infinite quantity is not allowed")
        # Floats have already lost exactness; take the shortest text that round-trips.
        value = Decimal(repr(raw))
    elif isinstance(raw, Decimal):
        if raw.is_nan():
            raise ValueError("NaN is not a quantity")
        if raw.is_infinite():
            raise ValueError("an infinite quantity is not allowed")
        value = raw
    else:
        raise ValueError(f"a quantity must be a decimal string, not {type_name(raw)}")
    return _bounded(value, allow_zero=allow_zero)


def _from_text(raw: str) -> Decimal:
    if len(raw) > MAX_TEXT_LENGTH:
        raise ValueError(f"a quantity has at most {MAX_TEXT_LENGTH} characters")
    if not QTY_RE.fullmatch(raw):
        shown = ascii(raw)[1:-1][:40]  # never echo NUL, control or lookalike characters
        lowered = raw.strip().lower().lstrip("+-")
        if lowered in ("nan", "snan"):
            raise ValueError("NaN is not a quantity")
        if lowered in ("inf", "infinity"):
            raise ValueError("an infinite quantity is not allowed")
        raise ValueError(
            f"'{shown}' is not a decimal number (use digits 0-9, an optional leading '-' "
            "and '.' for decimals, e.g. -12.5)"
        )
    return Decimal(raw)


def _bounded(value: Decimal, *, allow_zero: bool) -> Decimal:
    """Check against NUMERIC(18,6) without arithmetic (a Decimal with a huge exponent would
    overflow the context in normalize())."""
    if value == 0:
        if not allow_zero:
            raise ValueError("the quantity must not be zero")
        return Decimal(0)
    _, digits, exponent = value.as_tuple()
    # Trailing zeros after the point do not count as decimals: "1.500000000" is 1.5.
    digits = list(digits)
    while exponent < 0 and digits and digits[-1] == 0:
        digits.pop()
        exponent += 1
    if -exponent > MAX_DECIMALS:
        raise ValueError(f"at most {MAX_DECIMALS} decimal places are allowed")
    if value.adjusted() >= MAX_INTEGER_DIGITS:
        raise ValueError(f"too many digits: at most {MAX_INTEGER_DIGITS} before the decimal point")
    # A plain fixed-point value (no exponent) for the database and for echoes.
    return value.quantize(Decimal(1).scaleb(min(exponent, 0)))


def type_name(value) -> str:
    """How a message names the JSON type a caller sent instead."""
    names = {
        bool: "a boolean",
        list: "a list",
        dict: "an object",
        int: "a number",
        float: "a number",
    }
    return names.get(type(value), "null" if value is None else type(value).__name__)
