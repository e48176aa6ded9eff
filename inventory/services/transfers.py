"""Transfers: stock moved between two locations (or two lots of one item) as one posting with two
legs, `transfer_out` (-qty at the source) and `transfer_in` (+qty at the destination), which sum
to zero for the item. Both legs go through the posting service (inventory/services/posting.py):
the one row validation, one idempotency key, all or nothing, and the no-negative policy (the
source leg is refused if it would go below zero; the destination leg is never lowered)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError

from inventory.models import Item
from inventory.services.errors import ValidationFailed
from inventory.services.ledger_rows import (
    CODE_MAX,
    REFERENCE_MAX,
    LedgerRowInput,
    quantity_problem,
    text_problem,
    timestamp_problem,
)
from inventory.services.posting import PostingResult, ledger_entries_create
from inventory.services.stock_policy import refusal_from


@dataclass(frozen=True)
class TransferInput:
    """One transfer as a caller sends it (codes, not ids). `to_lot` defaults to `from_lot`: a
    lot moves with its stock; give another lot code to relabel. `to_item`, if given, must be the
    item itself: stock cannot change item (or unit) on the way."""

    item: str
    qty: object
    from_location: str
    to_location: str
    from_lot: str | None = None
    to_lot: str | None = None
    to_item: str | None = None
    reference: str = ""
    occurred_at: object = None


def _code(raw, field: str, errors: dict, *, required: bool) -> str | None:
    if raw is None or raw == "":
        if required:
            errors.setdefault(field, []).append(f"{field} is required")
        return None
    problem = text_problem(raw, max_length=CODE_MAX, required=required, what=field)
    if problem:
        errors.setdefault(field, []).append(problem)
        return None
    return raw.strip() or None


def transfer_legs(t: TransferInput) -> list[LedgerRowInput]:
    """The two legs, after the checks a transfer adds to the row rules: a positive quantity
    (zero or negative is refused: the direction is from -> to), not to the same location and
    lot, one item. Every problem at once, keyed by the transfer's field names."""
    errors: dict[str, list[str]] = {}
    item = _code(t.item, "item", errors, required=True)
    from_location = _code(t.from_location, "from_location", errors, required=True)
    to_location = _code(t.to_location, "to_location", errors, required=True)
    from_lot = _code(t.from_lot, "from_lot", errors, required=False)
    to_lot = _code(t.to_lot, "to_lot", errors, required=False) if t.to_lot else from_lot
    to_item = _code(t.to_item, "to_item", errors, required=False)

    qty, problem = quantity_problem(t.qty, allow_zero=True)
    if problem:
        errors.setdefault("qty", []).append(problem)
    elif qty == 0:
        errors.setdefault("qty", []).append("a transfer of zero moves nothing")
    elif qty < 0:
        errors.setdefault("qty", []).append(
            "a transfer quantity is positive (it moves from from_location to to_location)"
        )
    if (
        from_location
        and to_location
        and (from_location, from_lot) == (to_location, to_lot)
        and "to_location" not in errors
    ):
        errors.setdefault("to_location", []).append(
            "the destination is the source (same location and lot): nothing would move"
        )
    if item and to_item and to_item != item:
        errors.setdefault("to_item", []).append(_other_item_problem(item, to_item))
    reference = t.reference if t.reference is not None else ""
    problem = text_problem(reference, max_length=REFERENCE_MAX, what="reference")
    if problem:
        errors.setdefault("reference", []).append(problem)
    if t.occurred_at not in (None, ""):
        _, problem = timestamp_problem(t.occurred_at)
        if problem:
            errors.setdefault("occurred_at", []).append(problem)
    if errors:
        raise ValidationFailed("The transfer is invalid; nothing was posted.", errors)

    common = {"item": item, "reference": reference, "occurred_at": t.occurred_at or None}
    return [
        LedgerRowInput(
            location=from_location, lot=from_lot, qty=-qty, kind="transfer_out", **common
        ),
        LedgerRowInput(location=to_location, lot=to_lot, qty=qty, kind="transfer_in", **common),
    ]


def _other_item_problem(item: str, to_item: str) -> str:
    units = dict(Item.objects.filter(sku__in=[item, to_item]).values_list("sku", "unit"))
    if item in units and to_item in units and units[item] != units[to_item]:
        return (
            f"items of different units ({item} in {units[item]}, {to_item} in "
            f"{units[to_item]}): a transfer moves one item"
        )
    return f"a transfer moves one item: to_item must be {item!r} (post a receipt and an issue)"


def transfer_create(
    transfer: TransferInput, *, idempotency_key: str | None = None, recorded_by: str = ""
) -> PostingResult:
    """Post a transfer: both legs or neither. Leg errors from the posting service
    (`entries[0].location`: unknown code) are renamed to the transfer's fields."""
    legs = transfer_legs(transfer)
    try:
        return ledger_entries_create(
            entries=legs, idempotency_key=idempotency_key, recorded_by=recorded_by
        )
    except IntegrityError as err:
        # The no-negative refusal, if the posting service did not translate it already.
        refusal = refusal_from(err)
        if refusal is None:
            raise
        raise refusal from None
    except ValidationFailed as err:
        if not any(k.startswith("entries[") for k in err.fields):
            raise
        raise ValidationFailed(err.message, _leg_fields(err.fields)) from None


_LEG_FIELDS = {
    ("0", "location"): "from_location",
    ("1", "location"): "to_location",
    ("0", "lot"): "from_lot",
    ("1", "lot"): "to_lot",
}


def _leg_fields(fields: dict[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, messages in fields.items():
        name = key
        if key.startswith("entries[") and "]." in key:
            n, field = key[len("entries[") :].split("].", 1)
            name = _LEG_FIELDS.get((n, field), field)
        for m in messages:
            if m not in out.setdefault(name, []):
                out[name].append(m)
    return out
