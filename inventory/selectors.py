"""Reads on the current tenant's inventory for the API and the pages. Selectors return model rows
and typed page results; the HTTP shape (JSON schemas) lives in inventory/api/.

Lists are keyset-paged on a unique, indexed column: a page costs the same however many rows the
table has, and no COUNT(*) runs unless the caller asks for a total (`with_count`). Offset pages
(`page=`) stay for old clients."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext

from django.db import connection
from django.db.models import Q, Sum

from inventory.models import Balance, Item, LedgerEntry, Location, Lot

QTY_PLACES = Decimal("0.000001")
QTY_PRECISION = 38  # NUMERIC(38,6), inventory.models.BALANCE_QTY


def fmt_qty(value) -> str:
    """Quantities as strings with the column's six places, whatever their source. In a
    38-digit context, the balance column's: Python's default 28 digits make quantize() raise
    InvalidOperation on a balance of 10**22 or more."""
    with localcontext(prec=QTY_PRECISION):
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


@dataclass(frozen=True)
class BalanceRow:
    id: int
    item: str  # SKU
    unit: str
    location: str  # code
    lot: str | None  # code
    qty: Decimal
    last_ledger_id: int
    updated_at: datetime


# The API's balance list in one statement, without the ORM: it is the hottest read (a keyed
# lookup per request), and building the three-join query through the ORM cost more than
# PostgreSQL took to run it. Tenant tables unqualified: search_path selects the schema.
_BALANCES_SQL = """
    SELECT b.id, i.sku, i.unit, l.code, t.code, b.qty_canonical, b.last_ledger_id, b.updated_at
      FROM inventory_balances b
      JOIN inventory_items i ON i.id = b.item_id
      JOIN inventory_locations l ON l.id = b.location_id
      LEFT JOIN inventory_lots t ON t.id = b.lot_id
     WHERE {where}"""


def balances_page(*, filters: BalanceFilters, req: PageRequest = PageRequest()) -> PageResult:
    """Balances in key order (the balance row's id); a keyed lookup (item, location and lot
    given) is one indexed query."""
    where, params = ["TRUE"], []
    if filters.item:
        where.append("i.sku = %s")
        params.append(filters.item)
    if filters.location:
        where.append("l.code = %s")
        params.append(filters.location)
    if filters.lot == "none":
        where.append("b.lot_id IS NULL")
    elif filters.lot:
        where.append("t.code = %s")
        params.append(filters.lot)
    sql = _BALANCES_SQL.format(where=" AND ".join(where))
    return _balance_page(sql, params, req)


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


# --- balances as of an instant (issue 14) ---------------------------------------------------
#
# "As of T" is by occurred_at, the business time of a movement: a backdated entry (occurred
# before T, recorded after it) counts, as it does in every report that asks what was on hand at
# T. The balance at T is the current balance minus the movements that occurred after T, so a
# recent T reads few ledger rows (the occurred_at index finds them) instead of summing the whole
# history; it is exactly SUM(ledger WHERE occurred_at <= T) per key (tests/inventory/
# test_as_of.py). Balance and ledger are read in one statement, one snapshot: a posting that
# commits meanwhile is in both or in neither. A key is listed as of T when it had a movement at
# or before T (keys first touched later did not exist yet).

_AFTER_SQL = """
    WITH after AS (
        SELECT item_id, location_id, COALESCE(lot_id, 0) AS lot_key, sum(qty_canonical) AS qty
          FROM inventory_ledger
         WHERE occurred_at > %s{after_where}
         GROUP BY 1, 2, 3)"""

# Keys moved after T must have a movement at or before T to be listed (the key index serves it).
_EXISTED_SQL = """(a.item_id IS NULL OR EXISTS (
        SELECT 1 FROM inventory_ledger e
         WHERE e.item_id = b.item_id AND e.location_id = b.location_id
           AND COALESCE(e.lot_id, 0) = b.lot_key AND e.occurred_at <= %s))"""

_BALANCES_AS_OF_SQL = (
    _AFTER_SQL
    + """
    SELECT b.id, i.sku, i.unit, l.code, t.code, b.qty_canonical - COALESCE(a.qty, 0),
           b.last_ledger_id, b.updated_at
      FROM inventory_balances b
      JOIN inventory_items i ON i.id = b.item_id
      JOIN inventory_locations l ON l.id = b.location_id
      LEFT JOIN inventory_lots t ON t.id = b.lot_id
      LEFT JOIN after a
             ON a.item_id = b.item_id AND a.location_id = b.location_id AND a.lot_key = b.lot_key
     WHERE {where}"""
)


def balances_as_of_page(
    *, filters: BalanceFilters, as_of: datetime, req: PageRequest = PageRequest()
) -> PageResult:
    """Like balances_page, with each row's qty as of `as_of` (occurred_at). `last_ledger_id`
    and `updated_at` stay those of the current balance row."""
    where, params = [_EXISTED_SQL], [as_of]
    after_where, after_params = "", []
    if filters.item:
        where.append("i.sku = %s")
        params.append(filters.item)
        after_where += " AND item_id = (SELECT id FROM inventory_items WHERE sku = %s)"
        after_params.append(filters.item)
    if filters.location:
        where.append("l.code = %s")
        params.append(filters.location)
        after_where += " AND location_id = (SELECT id FROM inventory_locations WHERE code = %s)"
        after_params.append(filters.location)
    if filters.lot == "none":
        where.append("b.lot_id IS NULL")
    elif filters.lot:
        where.append("t.code = %s")
        params.append(filters.lot)
    sql = _BALANCES_AS_OF_SQL.format(after_where=after_where, where=" AND ".join(where))
    params = [as_of, *after_params, *params]
    return _balance_page(sql, params, req)


def with_qty_as_of(qs, as_of: datetime | None):
    """Balance rows (a queryset) annotated with `qty_at`: the balance as of `as_of`, or the
    current one without it; as of an instant, only keys that existed then. For the pages, which
    filter and sort on it (the API's list is balances_as_of_page, one statement)."""
    from django.db.models import F
    from django.db.models.expressions import RawSQL

    if as_of is None:
        return qs.annotate(qty_at=F("qty_canonical"))
    after = RawSQL(
        """inventory_balances.qty_canonical - COALESCE((
               SELECT sum(e.qty_canonical) FROM inventory_ledger e
                WHERE e.item_id = inventory_balances.item_id
                  AND e.location_id = inventory_balances.location_id
                  AND COALESCE(e.lot_id, 0) = inventory_balances.lot_key
                  AND e.occurred_at > %s), 0)""",
        [as_of],
    )
    existed = """EXISTS (SELECT 1 FROM inventory_ledger e
                          WHERE e.item_id = inventory_balances.item_id
                            AND e.location_id = inventory_balances.location_id
                            AND COALESCE(e.lot_id, 0) = inventory_balances.lot_key
                            AND e.occurred_at <= %s)"""
    return qs.annotate(qty_at=after).extra(where=[existed], params=[as_of])


def _balance_page(sql: str, params: list, req) -> PageResult:
    """One page of a balance query (plain or as of): keyset by id, or by page number; the total
    only when asked for."""
    with connection.cursor() as cursor:
        count = None
        if req.with_count:
            cursor.execute(f"SELECT count(*) FROM ({sql}) AS matching", params)
            count = cursor.fetchone()[0]
        if req.page is not None:
            tail, extra = (
                " ORDER BY b.id LIMIT %s OFFSET %s",
                [req.size + 1, (req.page - 1) * req.size],
            )
        else:
            tail, extra = " ORDER BY b.id LIMIT %s", [req.size + 1]
            if req.cursor is not None:
                sql += " AND b.id > %s"
                params = [*params, req.cursor]
        cursor.execute(sql + tail, params + extra)
        rows = [BalanceRow(*r) for r in cursor.fetchall()]
    more = len(rows) > req.size
    rows = rows[: req.size]
    return PageResult(rows, rows[-1].id if more else None, count)
