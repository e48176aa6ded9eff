"""Demo inventory for `make run`: a few hundred items, a handful of locations and lots, and
100,000 ledger rows per organisation, loaded with COPY (the balance trigger runs once per COPY).
Idempotent: an organisation whose ledger already has the rows is left alone."""

from __future__ import annotations

import random
import time
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from inventory.models import Item, LedgerEntry, Location, Lot, Unit
from inventory.services.ledger_copy import ledger_rows_copy
from inventory.services.ledger_rows import parse_quantity, parse_timestamp

ITEMS = 300
LOCATIONS = [
    ("WH-MAIN", "Main warehouse", "HQ"),
    ("WH-EAST", "East warehouse", "East"),
    ("WH-WEST", "West warehouse", "West"),
    ("STORE-1", "Store 1", "City"),
    ("STORE-2", "Store 2", "City"),
    ("COLD-1", "Cold room", "HQ"),
    ("QA-HOLD", "Quality hold", "HQ"),
    ("TRUCK-7", "Delivery truck 7", "Fleet"),
]
LEDGER_ROWS = 100_000
WORDS = [
    "flour",
    "sugar",
    "olive oil",
    "vinegar",
    "bolts",
    "gaskets",
    "resin",
    "solvent",
    "yeast",
    "salt",
    "cocoa",
    "milk powder",
    "ethanol",
    "glycerin",
    "labels",
    "cartons",
    "caps",
    "valves",
    "filters",
    "tape",
]


def demo_ledger_ensure(*, organization, rows: int = LEDGER_ROWS) -> str | None:
    with schema_context(organization.schema_name):
        if LedgerEntry.objects.exists():
            return None
        started = time.monotonic()
        rng = random.Random(organization.slug)
        with transaction.atomic():
            items = _items(rng)
            locations = Location.objects.bulk_create(
                [Location(code=c, name=n, site=s) for c, n, s in LOCATIONS]
            )
            lots = _lots(rng, items)
            _copy_ledger(rng, items, locations, lots, rows)
        return (
            f"{len(items)} items, {len(locations)} locations, {sum(len(v) for v in lots.values())} lots, "
            f"{rows} ledger rows in {time.monotonic() - started:.1f}s"
        )


def _items(rng: random.Random) -> list[Item]:
    units = [Unit.GRAM, Unit.MILLILITRE, Unit.EACH]
    return Item.objects.bulk_create(
        [
            Item(
                sku=f"SKU-{n:05d}",
                name=f"{rng.choice(WORDS).title()} {rng.choice(['A', 'B', 'C', 'XL', 'Pro'])} {n}",
                unit=units[n % 3],
            )
            for n in range(1, ITEMS + 1)
        ]
    )


def _lots(rng: random.Random, items: list[Item]) -> dict[int, list[Lot]]:
    today = timezone.now().date()
    lots = [
        Lot(
            item=item,
            code=f"L{item.id:04d}-{k}",
            expires_on=today + timedelta(days=rng.randint(-30, 400)),
        )
        for item in items[::3]
        for k in range(1, 4)
    ]
    by_item: dict[int, list[Lot]] = {}
    for lot in Lot.objects.bulk_create(lots):
        by_item.setdefault(lot.item_id, []).append(lot)
    return by_item


def _copy_ledger(rng, items, locations, lots, rows: int) -> None:
    now = timezone.now()
    kinds = ["receipt"] * 5 + ["issue"] * 4 + ["transfer_in", "transfer_out", "adjustment", "count"]

    def generated():
        for n in range(rows):
            item = items[rng.randrange(len(items))]
            location = locations[rng.randrange(len(locations))]
            item_lots = lots.get(item.id)
            lot_id = rng.choice(item_lots).id if item_lots and rng.random() < 0.8 else None
            kind = kinds[rng.randrange(len(kinds))]
            size = Decimal(rng.randint(1, 5000)) / (Decimal(1000) if item.unit != Unit.EACH else 1)
            qty = size if kind in ("receipt", "transfer_in", "count") else -size / 2
            if kind == "adjustment" and rng.random() < 0.5:
                qty = -qty
            occurred = now - timedelta(minutes=(rows - n) * 5)
            # The API's and the importer's quantity and time rules (ledger_rows); the codes come
            # from rows just created through the catalog's rules. The whole-row check would
            # double the load time.
            yield (
                item.id,
                location.id,
                lot_id,
                parse_quantity(qty),
                kind,
                f"DEMO-{n:06d}",
                parse_timestamp(occurred),
            )

    # The one COPY writer of ledger rows: the balance trigger runs once for the load.
    ledger_rows_copy(generated(), recorded_by="demo", recorded_at=now)
