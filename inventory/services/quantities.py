"""Parsing of quantities: exact decimals in canonical units, NUMERIC(18,6)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MAX_DECIMALS = 6
MAX_DIGITS = 18


def parse_quantity(raw, *, allow_zero: bool = False) -> Decimal:
    """Return the quantity as a Decimal or raise ValueError saying what is wrong with it."""
    if isinstance(raw, bool) or raw is None:
        raise ValueError("a quantity is required (a decimal number)")
    if isinstance(raw, float):
        # Floats have already lost exactness; accept only those that round-trip as written.
        raw = repr(raw)
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{str(raw)[:40]!r} is not a decimal number") from None
    if value.is_nan():
        raise ValueError("NaN is not a quantity")
    if value.is_infinite():
        raise ValueError("an infinite quantity is not allowed")
    if value == 0 and not allow_zero:
        raise ValueError("the quantity must not be zero")
    sign, digits, exponent = value.normalize().as_tuple() if value != 0 else (0, (0,), 0)
    decimals = max(0, -exponent)
    if decimals > MAX_DECIMALS:
        raise ValueError(f"at most {MAX_DECIMALS} decimal places are allowed")
    integer_digits = len(digits) + exponent
    if integer_digits > MAX_DIGITS - MAX_DECIMALS:
        raise ValueError(
            f"too many digits: at most {MAX_DIGITS - MAX_DECIMALS} before the decimal point"
        )
    return value
