"""Posting movements to the ledger: validation of every field, one transaction per batch, and
idempotency keys so that a retried request never posts twice."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from inventory.models import Item, LedgerEntry, Location, Lot, MovementKind, Posting
from inventory.services.errors import IdempotencyConflict, ValidationFailed
from inventory.services.quantities import parse_quantity

ENTRY_FIELDS = {"item", "location", "lot", "qty", "kind", "reference", "occurred_at"}


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
    entry = {
        "item": item,
        "location": location,
        "lot": lot,
        "qty": qty,
        "kind": kind,
        "reference": reference,
        "occurred_at": occurred_at,
    }
    return ledger_entries_create(
        entries=[entry], idempotency_key=idempotency_key, recorded_by=recorded_by
    )


def ledger_entries_create(
    *, entries: list[dict], idempotency_key: str | None = None, recorded_by: str = ""
) -> PostingResult:
    """Post a batch of movements, all or nothing. A retry with the same idempotency key returns
    the original entries if the payload is the same, and fails with a conflict if it is not."""
    if idempotency_key is not None:
        idempotency_key = str(idempotency_key).strip()
        if not idempotency_key or len(idempotency_key) > 200:
            raise ValidationFailed(
                "Invalid idempotency key.", {"idempotency_key": ["use 1 to 200 characters"]}
            )
    if not isinstance(entries, list) or not entries:
        raise ValidationFailed("No entries to post.", {"entries": ["send at least one entry"]})
    if len(entries) > settings.LEDGER_BATCH_MAX:
        raise ValidationFailed(
            f"Batch too large: {len(entries)} entries, at most {settings.LEDGER_BATCH_MAX}.",
            {"entries": [f"at most {settings.LEDGER_BATCH_MAX} entries per batch"]},
        )
    request_hash = _request_hash(entries)

    with transaction.atomic():
        if idempotency_key:
            replay = _replay(idempotency_key, request_hash)
            if replay is not None:
                return replay
        rows = _validated_rows(entries)
        try:
            with transaction.atomic():
                posting = Posting.objects.create(
                    idempotency_key=idempotency_key or None,
                    request_hash=request_hash,
                    entry_count=len(rows),
                    recorded_by=recorded_by[:200],
                )
        except IntegrityError:
            # Another request with this key committed first (we waited for it on the unique index).
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


def _canonical(key: str, value):
    """The same request sent twice hashes the same: "2.50", 2.5 and Decimal("2.5") are one qty."""
    if key == "qty" and not isinstance(value, bool):
        try:
            return format(parse_quantity(value, allow_zero=True).normalize(), "f")
        except ValueError:
            return str(value)
    if value == "" and key in ("lot", "reference", "occurred_at"):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _request_hash(entries: list[dict]) -> str:
    normalised = [
        {k: _canonical(k, v) for k, v in sorted(e.items())} if isinstance(e, dict) else repr(e)
        for e in entries
    ]
    payload = json.dumps(normalised, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _validated_rows(entries: list[dict]) -> list[dict]:
    """Check every field of every entry; raise once with all problems, keyed `entries[i].field`."""
    errors: dict[str, list[str]] = {}

    def fail(i: int, field: str, message: str) -> None:
        errors.setdefault(f"entries[{i}].{field}", []).append(message)

    skus = {str(e.get("item")) for e in entries if isinstance(e, dict) and e.get("item")}
    codes = {str(e.get("location")) for e in entries if isinstance(e, dict) and e.get("location")}
    items = {i.sku: i for i in Item.objects.filter(sku__in=skus)}
    locations = {loc.code: loc for loc in Location.objects.filter(code__in=codes)}
    lots = {
        (lot.item_id, lot.code): lot
        for lot in Lot.objects.filter(
            item__in=list(items.values()),
            code__in={str(e.get("lot")) for e in entries if isinstance(e, dict) and e.get("lot")},
        )
    }

    rows = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            fail(i, "entry", "each entry must be an object")
            continue
        unknown = set(entry) - ENTRY_FIELDS
        if unknown:
            fail(i, "entry", f"unknown field(s): {', '.join(sorted(unknown))}")
        item = items.get(str(entry.get("item"))) if entry.get("item") else None
        if not entry.get("item"):
            fail(i, "item", "an item SKU is required")
        elif item is None:
            fail(i, "item", f"unknown item {str(entry['item'])[:64]!r}")
        elif not item.is_active:
            fail(i, "item", f"item {item.sku!r} is inactive")
        location = locations.get(str(entry.get("location"))) if entry.get("location") else None
        if not entry.get("location"):
            fail(i, "location", "a location code is required")
        elif location is None:
            fail(i, "location", f"unknown location {str(entry['location'])[:64]!r}")
        lot = None
        if entry.get("lot") not in (None, ""):
            lot = lots.get((item.id, str(entry["lot"]))) if item else None
            if item is not None and lot is None:
                fail(i, "lot", f"unknown lot {str(entry['lot'])[:64]!r} for item {item.sku!r}")
        try:
            qty = parse_quantity(entry.get("qty"))
        except ValueError as err:
            fail(i, "qty", str(err))
            qty = None
        kind = entry.get("kind")
        if kind not in MovementKind.values:
            fail(
                i,
                "kind",
                f"unknown movement kind {str(kind)[:32]!r}; use one of {', '.join(MovementKind.values)}",
            )
        reference = entry.get("reference") or ""
        if not isinstance(reference, str) or len(reference) > 200:
            fail(i, "reference", "the reference must be text of at most 200 characters")
        occurred_at = _parse_occurred_at(
            entry.get("occurred_at"), lambda m, i=i: fail(i, "occurred_at", m)
        )
        rows.append(
            {
                "item": item,
                "location": location,
                "lot": lot,
                "qty_canonical": qty,
                "kind": kind,
                "reference": reference if isinstance(reference, str) else "",
                "occurred_at": occurred_at,
            }
        )
    if errors:
        count = len({key.split(".")[0] for key in errors})
        raise ValidationFailed(
            f"{count} of {len(entries)} entries are invalid; nothing was posted.", errors
        )
    return rows


def _parse_occurred_at(raw, fail) -> datetime:
    if raw in (None, ""):
        return timezone.now()
    if isinstance(raw, datetime):
        value = raw
    else:
        try:
            value = parse_datetime(str(raw))
        except ValueError:
            value = None
        if value is None:
            fail("use an ISO 8601 date-time, e.g. 2026-11-24T09:30:00Z")
            return timezone.now()
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return value
