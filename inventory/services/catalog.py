"""Items, locations and lots: the things ledger entries point at."""

from __future__ import annotations

import re
from datetime import date

from django.db import IntegrityError, transaction
from django.utils.dateparse import parse_date

from inventory.models import Item, Location, Lot, Unit
from inventory.services.errors import ValidationFailed
from inventory.services.ledger_rows import text_problem

# ASCII only ([A-Za-z0-9] in a str pattern never matches full-width or Arabic-Indic digits);
# fullmatch, because "$" also matches before a trailing newline.
CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")
CODE_RULE = "use 1-64 letters, digits, '.', '_', '/' or '-', starting with a letter or digit"


def code_problem(value) -> str | None:
    """Why `value` cannot be the code of a new item, location or lot (the importer creates them
    too), or None."""
    if not isinstance(value, str) or not CODE_RE.fullmatch(value):
        return CODE_RULE
    return None


def _check_code(value, field: str, errors: dict) -> str:
    value = (value or "").strip() if isinstance(value, str) else ""
    if code_problem(value):
        errors.setdefault(field, []).append(CODE_RULE)
    return value


def _check_name(value, errors: dict) -> str:
    value = value.strip() if isinstance(value, str) else ""
    if not value or len(value) > 200:
        errors.setdefault("name", []).append("a name of 1-200 characters is required")
    elif problem := text_problem(value, max_length=200, what="name"):
        errors.setdefault("name", []).append(problem)  # NUL or a lone surrogate
    return value


def expiry_date_problem(raw: str) -> tuple[date | None, str | None]:
    """An ISO date (2027-03-31) or why not; 2027-02-30 is refused, not a ValueError."""
    try:
        parsed = parse_date(raw) if raw.isascii() else None
    except ValueError:
        return None, f"{raw[:40]!r} is not a real date"
    if parsed is None:
        return None, "use an ISO date, e.g. 2027-03-31"
    return parsed, None


def item_create(*, sku: str, name: str, unit: str) -> Item:
    errors: dict[str, list[str]] = {}
    sku = _check_code(sku, "sku", errors)
    name = _check_name(name, errors)
    if unit not in Unit.values:
        errors.setdefault("unit", []).append(
            f"use one of {', '.join(Unit.values)} (canonical units)"
        )
    if not errors and Item.objects.filter(sku=sku).exists():
        errors["sku"] = [f"an item with SKU {sku!r} already exists"]
    if errors:
        raise ValidationFailed("The item is invalid.", errors)
    try:
        with transaction.atomic():
            return Item.objects.create(sku=sku, name=name, unit=unit)
    except IntegrityError:
        raise ValidationFailed(
            "The item is invalid.", {"sku": [f"an item with SKU {sku!r} already exists"]}
        ) from None


def location_create(*, code: str, name: str, site: str = "") -> Location:
    errors: dict[str, list[str]] = {}
    code = _check_code(code, "code", errors)
    name = _check_name(name, errors)
    site = site.strip() if isinstance(site, str) else ""
    if len(site) > 100:
        errors["site"] = ["at most 100 characters"]
    elif problem := text_problem(site, max_length=100, what="site"):
        errors["site"] = [problem]
    if not errors and Location.objects.filter(code=code).exists():
        errors["code"] = [f"a location with code {code!r} already exists"]
    if errors:
        raise ValidationFailed("The location is invalid.", errors)
    try:
        with transaction.atomic():
            return Location.objects.create(code=code, name=name, site=site)
    except IntegrityError:
        raise ValidationFailed(
            "The location is invalid.", {"code": [f"a location with code {code!r} already exists"]}
        ) from None


def lot_create(*, item: Item, code: str, expires_on: date | str | None = None) -> Lot:
    errors: dict[str, list[str]] = {}
    code = _check_code(code, "code", errors)
    if isinstance(expires_on, str):
        parsed, problem = expiry_date_problem(expires_on) if expires_on else (None, None)
        if problem:
            errors["expires_on"] = [problem]
        expires_on = parsed
    if not errors and Lot.objects.filter(item=item, code=code).exists():
        errors["code"] = [f"lot {code!r} already exists for item {item.sku!r}"]
    if errors:
        raise ValidationFailed("The lot is invalid.", errors)
    return Lot.objects.create(item=item, code=code, expires_on=expires_on)
