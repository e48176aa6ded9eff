"""Posting movements to the ledger: validation of every field (inventory/services/ledger_rows.py,
shared with the importer and the demo loader), one transaction per batch, and idempotency keys
so that a retried request never posts twice."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from inventory.models import Item, LedgerEntry, Location, Lot, Posting
from inventory.services.errors import IdempotencyConflict, ValidationFailed
from inventory.services.ledger_rows import (
    CheckedRow,
    LedgerRowInput,
    ledger_row_check,
    text_problem,
)

NUMERIC_OUT_OF_RANGE = "22003"  # PostgreSQL: numeric field overflow


@dataclass(frozen=True)
class PostingResult:
    posting: Posting
    entries: list[LedgerEntry]
    replayed: bool  # True when an idempotent retry returned the original entries


def ledger_entry_create(
    *,
    item: str,
    location: str,
    qty,
    kind: str,
    lot: str | None = None,
    reference: str = "",
    occurred_at=None,
    idempotency_key: str | None = None,
    recorded_by: str = "",
) -> PostingResult:
    """Post one movement. `item` is a SKU, `location` a location code, `lot` a lot code of the item."""
    entry = LedgerRowInput(
        item=item,
        location=location,
        lot=lot,
        qty=qty,
        kind=kind,
        reference=reference,
        occurred_at=occurred_at,
    )
    return ledger_entries_create(
        entries=[entry], idempotency_key=idempotency_key, recorded_by=recorded_by
    )


def ledger_entries_create(
    *,
    entries: Sequence[LedgerRowInput | dict],
    idempotency_key: str | None = None,
    recorded_by: str = "",
) -> PostingResult:
    """Post a batch of movements, all or nothing. Entries are `LedgerRowInput`s or dicts with the
    same keys. A retry with the same idempotency key returns the original entries if the payload
    is the same, and fails with a conflict if it is not."""
    if idempotency_key is not None:
        problem = text_problem(idempotency_key, max_length=200, what="the idempotency key")
        if problem is None and not idempotency_key.strip():
            problem = "use 1 to 200 characters"
        if problem:
            raise ValidationFailed("Invalid idempotency key.", {"idempotency_key": [problem]})
        idempotency_key = idempotency_key.strip()
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ValidationFailed("No entries to post.", {"entries": ["send at least one entry"]})
    if len(entries) > settings.LEDGER_BATCH_MAX:
        raise ValidationFailed(
            f"Batch too large: {len(entries)} entries, at most {settings.LEDGER_BATCH_MAX}.",
            {"entries": [f"at most {settings.LEDGER_BATCH_MAX} entries per batch"]},
        )
    # Everything that needs no database first: a malformed batch costs no query.
    checked = _checked_rows(entries)
    request_hash = _request_hash(entries, checked)

    try:
        with transaction.atomic():
            if idempotency_key:
                replay = _replay(idempotency_key, request_hash)
                if replay is not None:
                    return replay
            rows = _resolved_rows(checked, len(entries))
            try:
                with transaction.atomic():
                    posting = Posting.objects.create(
                        idempotency_key=idempotency_key or None,
                        request_hash=request_hash,
                        entry_count=len(rows),
                        recorded_by=recorded_by[:200],
                    )
            except IntegrityError:
                # Another request with this key committed first (we waited for it on the unique
                # index).
                replay = _replay(idempotency_key, request_hash)
                if replay is None:
                    raise
                return replay
            now = timezone.now()
            objs = [
                LedgerEntry(posting=posting, recorded_at=now, recorded_by=recorded_by[:200], **row)
                for row in rows
            ]
            # One INSERT statement: the statement-level trigger updates every balance once.
            created = LedgerEntry.objects.bulk_create(objs)
    except DataError as err:
        if getattr(err.__cause__, "sqlstate", None) == NUMERIC_OUT_OF_RANGE:
            # The trigger's balance column could not hold the new balance: refuse the posting
            # (it rolled back whole) instead of a 500.
            raise ValidationFailed(
                "A balance would overflow; nothing was posted.",
                {"entries": ["the resulting balance is too large for the balance table"]},
            ) from None
        raise
    return PostingResult(posting=posting, entries=created, replayed=False)


def _replay(idempotency_key: str, request_hash: str) -> PostingResult | None:
    posting = Posting.objects.filter(idempotency_key=idempotency_key).first()
    if posting is None:
        return None
    if posting.request_hash != request_hash:
        raise IdempotencyConflict(
            "This idempotency key was already used with a different request.",
            {"idempotency_key": ["already used with a different payload"]},
        )
    entries = list(
        LedgerEntry.objects.filter(posting=posting)
        .select_related("item", "location", "lot")
        .order_by("id")
    )
    return PostingResult(posting=posting, entries=entries, replayed=True)


def _checked_rows(entries) -> list[CheckedRow]:
    errors: dict[str, list[str]] = {}
    checked = []
    for i, entry in enumerate(entries):
        try:
            checked.append(ledger_row_check(entry, prefix=f"entries[{i}]."))
        except ValidationFailed as err:
            errors.update(err.fields)
    if errors:
        _refuse(errors, len(entries))
    return checked


def _refuse(errors: dict[str, list[str]], total: int):
    count = len({key.split(".")[0] for key in errors})
    raise ValidationFailed(f"{count} of {total} entries are invalid; nothing was posted.", errors)


def _request_hash(entries, checked: list[CheckedRow]) -> str:
    """The same request sent twice hashes the same: "2.50", 2.5 and Decimal("2.5") are one qty,
    a dict and a LedgerRowInput with the same values are one entry, and an omitted occurred_at
    (which means "now") stays omitted."""
    normalised = []
    for entry, row in zip(entries, checked, strict=True):
        raw_time = (
            entry.occurred_at if isinstance(entry, LedgerRowInput) else entry.get("occurred_at")
        )
        normalised.append(
            {
                "item": row.item,
                "location": row.location,
                "lot": row.lot,
                "qty": format(row.qty.normalize(), "f"),
                "kind": row.kind,
                "reference": row.reference or None,
                "occurred_at": None if raw_time in (None, "") else row.occurred_at.isoformat(),
            }
        )
    payload = json.dumps(normalised, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _resolved_rows(checked: list[CheckedRow], total: int) -> list[dict]:
    """Codes to rows: unknown or inactive items, unknown locations and lots of another item are
    refused, all problems at once, keyed `entries[i].field`."""
    errors: dict[str, list[str]] = {}

    def fail(i: int, field: str, message: str) -> None:
        errors.setdefault(f"entries[{i}].{field}", []).append(message)

    items = {i.sku: i for i in Item.objects.filter(sku__in={r.item for r in checked})}
    locations = {
        loc.code: loc for loc in Location.objects.filter(code__in={r.location for r in checked})
    }
    lot_codes = {r.lot for r in checked if r.lot}
    lots = (
        {
            (lot.item_id, lot.code): lot
            for lot in Lot.objects.filter(item__in=list(items.values()), code__in=lot_codes)
        }
        if lot_codes
        else {}
    )

    rows = []
    for i, row in enumerate(checked):
        item = items.get(row.item)
        if item is None:
            fail(i, "item", f"unknown item {row.item[:64]!r}")
        elif not item.is_active:
            fail(i, "item", f"item {item.sku!r} is inactive")
        location = locations.get(row.location)
        if location is None:
            fail(i, "location", f"unknown location {row.location[:64]!r}")
        lot = None
        if row.lot and item is not None:
            lot = lots.get((item.id, row.lot))
            if lot is None:
                fail(i, "lot", f"unknown lot {row.lot[:64]!r} for item {item.sku!r}")
        rows.append(
            {
                "item": item,
                "location": location,
                "lot": lot,
                "qty_canonical": row.qty,
                "kind": row.kind,
                "reference": row.reference,
                "occurred_at": row.occurred_at,
            }
        )
    if errors:
        _refuse(errors, total)
    return rows
