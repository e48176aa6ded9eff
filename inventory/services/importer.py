"""Import of an existing ledger from CSV (an organisation moving over from the old system).

All rows are checked before anything is written; any bad row is reported by line number and
nothing is written. A good file goes in as one transaction: missing items, locations and lots
are created, then the ledger rows are loaded with COPY (the balance trigger fires once).
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from inventory.models import Item, Location, Lot, MovementKind, Unit
from inventory.services.errors import ValidationFailed
from inventory.services.quantities import parse_quantity

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


@dataclass
class ImportResult:
    rows: int = 0
    items_created: int = 0
    locations_created: int = 0
    lots_created: int = 0
    seconds: float = 0.0


@dataclass
class _Row:
    line: int
    sku: str
    location: str
    lot: str
    qty: object
    kind: str
    reference: str
    occurred_at: datetime


def ledger_import_csv(*, text: str, source: str = "csv") -> ImportResult:
    started = time.monotonic()
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValidationFailed(
            f"line 1: missing column(s): {', '.join(missing)}",
            {"line 1": [f"required columns: {', '.join(REQUIRED)}"]},
        )
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if unknown:
        raise ValidationFailed(
            f"line 1: unknown column(s): {', '.join(unknown)}",
            {"line 1": [f"allowed columns: {', '.join(REQUIRED + OPTIONAL)}"]},
        )

    errors: dict[str, list[str]] = {}
    rows: list[_Row] = []
    new_items: dict[str, tuple[str, str]] = {}
    new_locations: dict[str, tuple[str, str]] = {}
    new_lots: dict[tuple[str, str], object] = {}
    items = {i.sku: i for i in Item.objects.all()}
    locations = {loc.code: loc for loc in Location.objects.all()}

    for n, raw in enumerate(reader, start=2):
        rec = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}

        def fail(message: str, n=n) -> None:
            errors.setdefault(f"line {n}", []).append(message)

        if None in raw:
            fail("more values than columns")
        sku, loc_code = rec.get("sku", ""), rec.get("location", "")
        if not sku:
            fail("sku is required")
        elif sku in items:
            if rec.get("unit") and rec["unit"] != items[sku].unit:
                fail(f"unit {rec['unit']!r} differs from item {sku}'s unit {items[sku].unit!r}")
        else:
            unit, name = rec.get("unit", ""), rec.get("item_name", "") or sku
            if sku in new_items:
                if unit and unit != new_items[sku][1]:
                    fail(f"item {sku!r} has unit {new_items[sku][1]!r} on an earlier line")
            elif unit not in Unit.values:
                fail(f"new item {sku!r} needs a unit: one of {', '.join(Unit.values)}")
            else:
                new_items[sku] = (name, unit)
        if not loc_code:
            fail("location is required")
        elif loc_code not in locations:
            new_locations.setdefault(
                loc_code, (rec.get("location_name") or loc_code, rec.get("site", ""))
            )
        lot = rec.get("lot", "")
        if lot:
            expires = rec.get("lot_expires_on", "")
            if expires and parse_date(expires) is None:
                fail(f"lot_expires_on {expires!r} is not an ISO date")
            new_lots.setdefault((sku, lot), parse_date(expires) if expires else None)
        try:
            qty = parse_quantity(rec.get("qty"))
        except ValueError as err:
            fail(f"qty: {err}")
            qty = None
        kind = rec.get("kind", "")
        if kind not in MovementKind.values:
            fail(f"unknown movement kind {kind!r}")
        occurred = rec.get("occurred_at", "")
        occurred_at = timezone.now()
        if occurred:
            parsed = parse_datetime(occurred)
            if parsed is None:
                fail(f"occurred_at {occurred!r} is not an ISO date-time")
            else:
                occurred_at = parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)
        reference = rec.get("reference", "")
        if len(reference) > 200:
            fail("reference is longer than 200 characters")
        rows.append(_Row(n, sku, loc_code, lot, qty, kind, reference, occurred_at))

    if not rows and not errors:
        raise ValidationFailed(
            "The file has no ledger rows.", {"file": ["no rows after the header"]}
        )
    if errors:
        shown = dict(list(errors.items())[:MAX_ERRORS_REPORTED])
        raise ValidationFailed(f"{len(errors)} line(s) are invalid; nothing was imported.", shown)

    result = ImportResult(rows=len(rows))
    with transaction.atomic():
        created = Item.objects.bulk_create(
            [Item(sku=s, name=n, unit=u) for s, (n, u) in new_items.items()]
        )
        items.update({i.sku: i for i in created})
        created_locs = Location.objects.bulk_create(
            [Location(code=c, name=n, site=s) for c, (n, s) in new_locations.items()]
        )
        locations.update({loc.code: loc for loc in created_locs})
        existing_lots = {
            (lot.item_id, lot.code): lot
            for lot in Lot.objects.filter(item__sku__in={s for s, _ in new_lots})
        }
        to_create = [
            Lot(item=items[s], code=c, expires_on=e)
            for (s, c), e in new_lots.items()
            if (items[s].id, c) not in existing_lots
        ]
        for lot in Lot.objects.bulk_create(to_create):
            existing_lots[(lot.item_id, lot.code)] = lot
        result.items_created, result.locations_created, result.lots_created = (
            len(created),
            len(created_locs),
            len(to_create),
        )

        now = timezone.now()
        recorded_by = f"import:{source}"[:200]
        with connection.cursor() as cursor:
            raw_cursor = cursor.cursor  # the psycopg cursor, search_path already set to the tenant
            with raw_cursor.copy(
                "COPY inventory_ledger (item_id, location_id, lot_id, qty_canonical, kind, reference, "
                "occurred_at, recorded_at, recorded_by) FROM STDIN"
            ) as copy:
                for r in rows:
                    item = items[r.sku]
                    lot = existing_lots[(item.id, r.lot)].id if r.lot else None
                    copy.write_row(
                        (
                            item.id,
                            locations[r.location].id,
                            lot,
                            r.qty,
                            r.kind,
                            r.reference,
                            r.occurred_at,
                            now,
                            recorded_by,
                        )
                    )
    result.seconds = time.monotonic() - started
    return result
