"""Reads on the current tenant's inventory, shaped for the API and the pages."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, Sum
from django.utils.dateparse import parse_datetime

from inventory.models import Balance, Item, LedgerEntry, Location, Lot, MovementKind
from inventory.services.errors import ValidationFailed

MAX_PAGE_SIZE = 200
QTY_PLACES = Decimal("0.000001")
MAX_LEDGER_LIMIT = 500


def _int_param(query, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(
            f"{name} must be a whole number.", {name: ["must be a whole number"]}
        ) from None
    if not low <= value <= high:
        raise ValidationFailed(
            f"{name} must be between {low} and {high}.", {name: [f"between {low} and {high}"]}
        )
    return value


@dataclass(frozen=True)
class Page:
    number: int = 1
    size: int = 50

    @classmethod
    def from_query(cls, query) -> Page:
        return cls(
            _int_param(query, "page", 1, 1, 10**6),
            _int_param(query, "page_size", 50, 1, MAX_PAGE_SIZE),
        )

    def slice(self, qs):
        start = (self.number - 1) * self.size
        return qs[start : start + self.size]

    def meta(self, count: int) -> dict:
        return {
            "page": self.number,
            "page_size": self.size,
            "count": count,
            "pages": max(1, -(-count // self.size)),
        }


def fmt_qty(value) -> str:
    """Quantities as strings with the column's six places, whatever their source."""
    return str(Decimal(value or 0).quantize(QTY_PLACES))


def item_dict(item: Item, on_hand=None) -> dict:
    data = {
        "id": item.id,
        "sku": item.sku,
        "name": item.name,
        "unit": item.unit,
        "active": item.is_active,
    }
    if on_hand is not None:
        data["on_hand"] = fmt_qty(on_hand)
    return data


def location_dict(location: Location) -> dict:
    return {
        "id": location.id,
        "code": location.code,
        "name": location.name,
        "site": location.site,
        "active": location.is_active,
    }


def ledger_entry_dict(entry: LedgerEntry) -> dict:
    return {
        "id": entry.id,
        "item": entry.item.sku,
        "location": entry.location.code,
        "lot": entry.lot.code if entry.lot_id else None,
        "qty": fmt_qty(entry.qty_canonical),
        "kind": entry.kind,
        "reference": entry.reference,
        "occurred_at": entry.occurred_at.isoformat(),
        "recorded_at": entry.recorded_at.isoformat(),
        "recorded_by": entry.recorded_by,
        "posting_id": entry.posting_id,
    }


def _items_matching(search: str):
    qs = Item.objects.all()
    search = (search or "").strip()
    if search:
        qs = qs.filter(Q(sku__icontains=search) | Q(name__icontains=search))
    return qs.order_by("sku")


def items_list(*, search: str = "", page: Page = Page()) -> dict:
    qs = _items_matching(search)
    return {**page.meta(qs.count()), "results": [item_dict(i) for i in page.slice(qs)]}


def items_with_on_hand(*, search: str = "", page: Page = Page()) -> dict:
    """Items with their on-hand total over every location and lot, from the balance table."""
    qs = _items_matching(search)
    rows = list(page.slice(qs))
    totals = dict(
        Balance.objects.filter(item_id__in=[i.id for i in rows])
        .values("item_id")
        .annotate(total=Sum("qty_canonical"))
        .values_list("item_id", "total")
    )
    return {**page.meta(qs.count()), "results": [item_dict(i, totals.get(i.id, 0)) for i in rows]}


def locations_list(*, page: Page = Page()) -> dict:
    qs = Location.objects.order_by("code")
    return {**page.meta(qs.count()), "results": [location_dict(loc) for loc in page.slice(qs)]}


@dataclass(frozen=True)
class BalanceFilters:
    item: str = ""
    location: str = ""
    lot: str = ""  # a lot code, or "none" for balances without a lot

    @classmethod
    def from_query(cls, query) -> BalanceFilters:
        return cls(
            query.get("item", "").strip(),
            query.get("location", "").strip(),
            query.get("lot", "").strip(),
        )


def balances_queryset(filters: BalanceFilters):
    qs = Balance.objects.select_related("item", "location", "lot")
    if filters.item:
        qs = qs.filter(item__sku=filters.item)
    if filters.location:
        qs = qs.filter(location__code=filters.location)
    if filters.lot == "none":
        qs = qs.filter(lot__isnull=True)
    elif filters.lot:
        qs = qs.filter(lot__code=filters.lot)
    return qs


def balance_dict(balance: Balance) -> dict:
    return {
        "item": balance.item.sku,
        "location": balance.location.code,
        "lot": balance.lot.code if balance.lot_id else None,
        "qty": fmt_qty(balance.qty_canonical),
        "unit": balance.item.unit,
        "last_ledger_id": balance.last_ledger_id,
        "updated_at": balance.updated_at.isoformat(),
    }


def balances_list(*, filters: BalanceFilters, page: Page = Page()) -> dict:
    qs = balances_queryset(filters).order_by("item__sku", "location__code", "lot__code")
    return {**page.meta(qs.count()), "results": [balance_dict(b) for b in page.slice(qs)]}


def balance_of(*, item_id: int, location_id: int, lot_id: int | None):
    """One balance by key: an index lookup on the unique (item, location, lot_key) index."""
    row = (
        Balance.objects.filter(item_id=item_id, location_id=location_id, lot_id=lot_id)
        .values_list("qty_canonical", flat=True)
        .first()
    )
    return row if row is not None else 0


@dataclass(frozen=True)
class LedgerFilters:
    item: str = ""
    location: str = ""
    lot: str = ""
    kind: str = ""
    since: object = None
    until: object = None
    cursor: int | None = None
    limit: int = 100

    @classmethod
    def from_query(cls, query) -> LedgerFilters:
        kind = query.get("kind", "").strip()
        if kind and kind not in MovementKind.values:
            raise ValidationFailed(
                f"Unknown kind {kind!r}.", {"kind": [f"one of {', '.join(MovementKind.values)}"]}
            )
        dates = {}
        for name in ("since", "until"):
            raw = query.get(name, "").strip()
            if raw:
                parsed = parse_datetime(raw)
                if parsed is None:
                    raise ValidationFailed(
                        f"{name} must be an ISO 8601 date-time.", {name: ["ISO 8601 date-time"]}
                    )
                dates[name] = parsed
        cursor = query.get("cursor")
        return cls(
            item=query.get("item", "").strip(),
            location=query.get("location", "").strip(),
            lot=query.get("lot", "").strip(),
            kind=kind,
            since=dates.get("since"),
            until=dates.get("until"),
            cursor=_int_param(query, "cursor", 0, 1, 2**63 - 1)
            if cursor not in (None, "")
            else None,
            limit=_int_param(query, "limit", 100, 1, MAX_LEDGER_LIMIT),
        )


def ledger_page(*, filters: LedgerFilters) -> dict:
    """Newest first, keyset-paginated by id: constant cost per page however long the ledger is."""
    qs = LedgerEntry.objects.select_related("item", "location", "lot")
    if filters.item:
        item_id = Item.objects.filter(sku=filters.item).values_list("id", flat=True).first()
        qs = qs.filter(item_id=item_id if item_id is not None else -1)
    if filters.location:
        location_id = (
            Location.objects.filter(code=filters.location).values_list("id", flat=True).first()
        )
        qs = qs.filter(location_id=location_id if location_id is not None else -1)
    if filters.lot == "none":
        qs = qs.filter(lot__isnull=True)
    elif filters.lot:
        lot_ids = list(Lot.objects.filter(code=filters.lot).values_list("id", flat=True))
        qs = qs.filter(lot_id__in=lot_ids)
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.since:
        qs = qs.filter(occurred_at__gte=filters.since)
    if filters.until:
        qs = qs.filter(occurred_at__lt=filters.until)
    if filters.cursor is not None:
        qs = qs.filter(id__lt=filters.cursor)
    rows = list(qs.order_by("-id")[: filters.limit])
    next_cursor = rows[-1].id if len(rows) == filters.limit else None
    return {
        "results": [ledger_entry_dict(e) for e in rows],
        "next_cursor": next_cursor,
        "limit": filters.limit,
    }
