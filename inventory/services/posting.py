"""Posting movements to the ledger: validation of every field (inventory/services/ledger_rows.py,
shared with the importer and the demo loader), all or nothing per batch, and idempotency keys
so that a retried request never posts twice.

A posting costs two round trips whatever its size (the API's hot path; `make bench`, issue 9):
one SELECT resolves every item, location and lot code and looks the idempotency key up, and one
statement inserts the Posting row and every ledger row (`INSERT … SELECT FROM unnest(…)` of
typed arrays, no model instance per row for the INSERT). A single statement is atomic by
itself, so outside a transaction none is opened (no BEGIN/COMMIT round trips); the ledger's
statement-level trigger updates the balances inside that statement."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from inventory.models import Item, LedgerEntry, Location, Lot, Posting
from inventory.services import stock_policy
from inventory.services.errors import IdempotencyConflict, ValidationFailed
from inventory.services.ledger_rows import (
    CheckedRow,
    LedgerRowInput,
    ledger_row_check,
    text_problem,
)

NUMERIC_OUT_OF_RANGE = "22003"  # PostgreSQL: numeric field overflow
# Keys of postings made by `import_ledger` (inventory/services/importer.py): a client of the API
# must not replay, or block, an import by sending its key.
RESERVED_KEY_PREFIX = "import:"

# Every code of the batch in one query; the key's Posting (if any) comes along.
RESOLVE_SQL = """
SELECT 'item' AS what, id, sku AS code, NULL::text AS item_sku, is_active
  FROM inventory_items WHERE sku = ANY(%(skus)s::text[])
UNION ALL
SELECT 'location', id, code, NULL, NULL
  FROM inventory_locations WHERE code = ANY(%(locations)s::text[])
UNION ALL
SELECT 'lot', lot.id, lot.code, item.sku, NULL
  FROM inventory_lots lot JOIN inventory_items item ON item.id = lot.item_id
 WHERE lot.code = ANY(%(lots)s::text[]) AND item.sku = ANY(%(skus)s::text[])
UNION ALL
SELECT 'posting', id, NULL, NULL, NULL
  FROM inventory_postings WHERE idempotency_key = %(key)s
"""

# The Posting row and its entries in one statement. ON CONFLICT DO NOTHING waits for a
# concurrent request holding the same key and, if that one committed, inserts nothing at all
# (the ledger rows join the Posting row that was not inserted): the caller then replays it.
# Rows are inserted in the batch's order, so their ids ascend with it.
INSERT_SQL = """
WITH posting AS (
    INSERT INTO inventory_postings
           (idempotency_key, request_hash, entry_count, recorded_by, created_at)
    VALUES (%(key)s, %(hash)s, %(count)s, %(recorded_by)s, %(now)s)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
)
INSERT INTO inventory_ledger
       (item_id, location_id, lot_id, qty_canonical, kind, reference, occurred_at,
        posting_id, recorded_at, recorded_by)
SELECT r.item_id, r.location_id, r.lot_id, r.qty, r.kind, r.reference, r.occurred_at,
       posting.id, %(now)s, %(recorded_by)s
  FROM posting,
       unnest(%(item_ids)s::bigint[], %(location_ids)s::bigint[], %(lot_ids)s::bigint[],
              %(qtys)s::numeric[], %(kinds)s::text[], %(references)s::text[],
              %(occurred)s::timestamptz[])
       WITH ORDINALITY
       AS r(item_id, location_id, lot_id, qty, kind, reference, occurred_at, n)
 ORDER BY r.n
RETURNING id, posting_id
"""


# LedgerEntry's columns in model order (from_db() takes values in that order), and its related
# objects.
ENTRY_FIELDS = (
    "id",
    "item_id",
    "location_id",
    "lot_id",
    "qty_canonical",
    "kind",
    "reference",
    "posting_id",
    "occurred_at",
    "recorded_at",
    "recorded_by",
)
assert ENTRY_FIELDS == tuple(f.attname for f in LedgerEntry._meta.concrete_fields), (
    "LedgerEntry's fields changed: update ENTRY_FIELDS and the values given to from_db()"
)
ITEM_FIELD, LOCATION_FIELD, LOT_FIELD, POSTING_FIELD = (
    LedgerEntry._meta.get_field(name) for name in ("item", "location", "lot", "posting")
)


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
    idempotency_key = _checked_key(idempotency_key)
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
    recorded_by = recorded_by[:200]

    # Inside a caller's transaction, a savepoint keeps a failed insert from aborting it; on its
    # own (the API), the INSERT statement is the transaction.
    with transaction.atomic() if connection.in_atomic_block else nullcontext():
        resolved, posted = _resolve(checked, idempotency_key)
        if posted:
            return _replay(idempotency_key, request_hash)
        rows = _resolved_rows(checked, resolved, len(entries))
        now = timezone.now()
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    INSERT_SQL,
                    {
                        "key": idempotency_key,
                        "hash": request_hash,
                        "count": len(rows),
                        "recorded_by": recorded_by,
                        "now": now,
                        "item_ids": [r[0].id for r in rows],
                        "location_ids": [r[1].id for r in rows],
                        "lot_ids": [r[2].id if r[2] else None for r in rows],
                        "qtys": [c.qty for c in checked],
                        "kinds": [c.kind for c in checked],
                        "references": [c.reference for c in checked],
                        "occurred": [c.occurred_at for c in checked],
                    },
                )
                inserted = cursor.fetchall()
        except DataError as err:
            if getattr(err.__cause__, "sqlstate", None) == NUMERIC_OUT_OF_RANGE:
                # The trigger's balance column could not hold the new balance: refuse the
                # posting (the statement rolled back whole) instead of a 500.
                raise ValidationFailed(
                    "A balance would overflow; nothing was posted.",
                    {"entries": ["the resulting balance is too large for the balance table"]},
                ) from None
            raise
        except IntegrityError as err:
            # The balance trigger's no-negative refusal (inventory/services/stock_policy.py):
            # a 409 naming each short key; the statement rolled back whole.
            refusal = stock_policy.refusal_from(err, rows)
            if refusal is None:
                raise
            raise refusal from None
        if not inserted:
            # A concurrent request with this key committed first (we waited for it on the
            # unique index): answer as its retry.
            return _replay(idempotency_key, request_hash)

    posting = Posting(
        id=inserted[0][1],
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        entry_count=len(rows),
        recorded_by=recorded_by,
        created_at=now,
    )
    alias = connection.alias  # (a proxy: one lookup, not one per row)
    posting._state.adding, posting._state.db = False, alias  # a stored row
    created = []
    for (entry_id, _), (item, location, lot), row in zip(
        sorted(inserted), rows, checked, strict=True
    ):
        # As a query would load it (from_db, positional values; about 4x cheaper than keyword
        # construction, which runs every related-object descriptor), the related rows cached.
        entry = LedgerEntry.from_db(
            alias,
            ENTRY_FIELDS,
            (
                entry_id,
                item.id,
                location.id,
                lot.id if lot else None,
                row.qty,
                row.kind,
                row.reference,
                posting.id,
                row.occurred_at,
                now,
                recorded_by,
            ),
        )
        ITEM_FIELD.set_cached_value(entry, item)
        LOCATION_FIELD.set_cached_value(entry, location)
        LOT_FIELD.set_cached_value(entry, lot)
        POSTING_FIELD.set_cached_value(entry, posting)
        created.append(entry)
    return PostingResult(posting=posting, entries=created, replayed=False)


def _checked_key(key: str | None) -> str | None:
    if key is None:
        return None
    problem = text_problem(key, max_length=200, what="the idempotency key")
    if problem is None and not key.strip():
        problem = "use 1 to 200 characters"
    if problem is None and key.strip().startswith(RESERVED_KEY_PREFIX):
        problem = f"keys starting with {RESERVED_KEY_PREFIX!r} are reserved for import_ledger"
    if problem:
        raise ValidationFailed("Invalid idempotency key.", {"idempotency_key": [problem]})
    return key.strip()


def _resolve(checked: list[CheckedRow], key: str | None) -> tuple[dict, bool]:
    """Items by SKU, locations by code, lots by (SKU, code), and whether the key was used
    before: one query. Instances carry only the fields read here
    (the rest load on access)."""
    lot_codes = sorted({r.lot for r in checked if r.lot})
    found: dict = {"item": {}, "location": {}, "lot": {}}
    posted = False
    alias = connection.alias
    with connection.cursor() as cursor:
        cursor.execute(
            RESOLVE_SQL,
            {
                "skus": sorted({r.item for r in checked}),
                "locations": sorted({r.location for r in checked}),
                "lots": lot_codes,
                "key": key,  # NULL matches no posting
            },
        )
        for what, pk, code, item_sku, is_active in cursor.fetchall():
            if what == "item":
                found["item"][code] = Item.from_db(
                    alias, ["id", "sku", "is_active"], [pk, code, is_active]
                )
            elif what == "location":
                found["location"][code] = Location.from_db(alias, ["id", "code"], [pk, code])
            elif what == "lot":
                found["lot"][(item_sku, code)] = (pk, code)
            else:
                posted = True
    return found, posted


def _replay(idempotency_key: str, request_hash: str) -> PostingResult:
    posting = Posting.objects.filter(idempotency_key=idempotency_key).first()
    if posting is None:  # pragma: no cover - a Posting row is never deleted
        raise RuntimeError(f"the posting of idempotency key {idempotency_key!r} vanished")
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


def _resolved_rows(checked: list[CheckedRow], found: dict, total: int) -> list[tuple]:
    """(item, location, lot) per row: unknown or inactive items, unknown locations and lots of
    another item are refused, all problems at once, keyed `entries[i].field`."""
    errors: dict[str, list[str]] = {}

    def fail(i: int, field: str, message: str) -> None:
        errors.setdefault(f"entries[{i}].{field}", []).append(message)

    items, locations, lots = found["item"], found["location"], found["lot"]
    lot_objs: dict[tuple, Lot] = {}
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
            key = (item.sku, row.lot)
            lot = lot_objs.get(key)
            if lot is None and key in lots:
                pk, code = lots[key]
                lot = lot_objs[key] = Lot.from_db(
                    connection.alias, ["id", "item_id", "code"], [pk, item.id, code]
                )
            if lot is None:
                fail(i, "lot", f"unknown lot {row.lot[:64]!r} for item {item.sku!r}")
        rows.append((item, location, lot))
    if errors:
        _refuse(errors, total)
    return rows
