"""Reads on the current tenant's inventory for the API and the pages. Selectors return model rows
and typed page results; the HTTP shape (JSON schemas) lives in inventory/api/.

Lists are keyset-paged on a unique, indexed column: a page costs the same however many rows the
table has, and no COUNT(*) runs unless the caller asks for a total (`with_count`). Offset pages
(`page=`) stay for old clients."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q, Sum

from inventory.models import Balance, Item, LedgerEntry, Location, Lot

QTY_PLACES = Decimal("0.000001")


def fmt_qty(value) -> str:
    """Quantities as strings with the column's six places, whatever their source."""
    return str(Decimal(value or 0).quantize(QTY_PLACES))


@dataclass(frozen=True)
class PageRequest:
    size: int = 50
    cursor: str | int | None = None  # keyset: rows after this key
    page: int | None = None  # offset paging (old clients); None with a cursor
    with_count: bool = False


@dataclass(frozen=True)
class PageResult:
    rows: list
    next_cursor: str | int | None
    count: int | None = None


def _keyset_page(qs, key: str, req: PageRequest) -> PageResult:
    """One page ordered by `key` (unique): fetch one row more than asked to know whether another
    page follows, so the last page never links to an empty one."""
    qs = qs.order_by(key)
    count = qs.count() if req.with_count else None
    if req.page is not None:
        start = (req.page - 1) * req.size
        rows = list(qs[start : start + req.size + 1])
    else:
        if req.cursor is not None:
            qs = qs.filter(**{f"{key}__gt": req.cursor})
        rows = list(qs[: req.size + 1])
    more = len(rows) > req.size
    rows = rows[: req.size]
    return PageResult(rows, getattr(rows[-1], key) if more else None, count)


def _items_matching(search: str):
    qs = Item.objects.all()
    search = (search or "").strip()
    if search:
        qs = qs.filter(Q(sku__icontains=search) | Q(name__icontains=search))
    return qs


def items_page(*, search: str = "", req: PageRequest = PageRequest()) -> PageResult:
    return _keyset_page(_items_matching(search), "sku", req)


def items_with_on_hand_page(*, search: str = "", req: PageRequest = PageRequest()) -> PageResult:
    """Items with `on_hand` (their total over every location and lot, from the balance table)."""
    result = items_page(search=search, req=req)
    totals = dict(
        Balance.objects.filter(item_id__in=[i.id for i in result.rows])
        .values("item_id")
        .annotate(total=Sum("qty_canonical"))
        .values_list("item_id", "total")
    )
    for item in result.rows:
        item.on_hand = totals.get(item.id, Decimal(0))
    return result


def locations_page(*, req: PageRequest = PageRequest()) -> PageResult:
    return _keyset_page(Location.objects.all(), "code", req)


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


def balances_page(*, filters: BalanceFilters, req: PageRequest = PageRequest()) -> PageResult:
    """Balances in key order (the balance row's id): a keyed lookup (item, location and lot
    given) is one indexed query."""
    return _keyset_page(balances_queryset(filters), "id", req)


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
    lot: str = ""  # a lot code, or "none"
    kind: str = ""
    since: datetime | None = None
    until: datetime | None = None
    cursor: int | None = None
    limit: int = 100


def ledger_page(*, filters: LedgerFilters) -> PageResult:
    """Newest first, keyset-paginated by id: constant cost per page however long the ledger is.
    Item and location are looked up first so the ledger's (item, location, lot, id) index serves
    the ORDER BY."""
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
    rows = list(qs.order_by("-id")[: filters.limit + 1])
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    return PageResult(rows, rows[-1].id if more else None)
