"""Builders for the export tests: many balance rows in a few statements, and the export as the
page wrote it before issue 18 (csv.writer over ORM rows), which the COPY export must equal."""

from __future__ import annotations

import csv

from django.db import connection
from django_tenants.utils import schema_context

from inventory.selectors import fmt_qty
from inventory.services.balance_export import HEADER, balance_rows, csv_text


def many_balances(schema: str, *, items: int, locations: int, prefix: str = "BIG") -> int:
    """items x locations balance rows (no lot), one ledger INSERT (the trigger writes them)."""
    with schema_context(schema), connection.cursor() as cur:
        cur.execute(
            "INSERT INTO inventory_items (sku, name, unit, is_active, created_at) "
            "SELECT %s || '-' || lpad(n::text, 6, '0'), 'Item, \"big\" ' || n, 'ea', true, now() "
            "FROM generate_series(0, %s - 1) n",
            [prefix, items],
        )
        cur.execute(
            "INSERT INTO inventory_locations (code, name, site, is_active) "
            "SELECT %s || '-L' || lpad(n::text, 4, '0'), 'Location ' || n, '', true "
            "FROM generate_series(0, %s - 1) n",
            [prefix, locations],
        )
        cur.execute(
            "INSERT INTO inventory_ledger (item_id, location_id, lot_id, qty_canonical, kind, "
            "reference, occurred_at, recorded_at, recorded_by) "
            "SELECT i.id, l.id, NULL, round((random() * 2000 - 1000)::numeric, 6) + 0.0000005, "
            "'adjustment', '', now(), now(), '' "
            "FROM inventory_items i CROSS JOIN inventory_locations l "
            "WHERE i.sku LIKE %s AND l.code LIKE %s",
            [f"{prefix}-%", f"{prefix}-L%"],
        )
        return cur.rowcount


class _Echo:
    def write(self, value):
        return value


def python_export(query) -> bytes:
    """The export as pages.balances_csv wrote it until issue 18 (csv.writer per row over ORM
    values, csv_text, fmt_qty, isoformat), with the balance id as the last tie-breaker (as the
    new export has), in the current schema."""
    writer = csv.writer(_Echo())
    qs = balance_rows(query)
    qs = qs.order_by(*qs.query.order_by, "pk").values_list(
        "item__sku",
        "item__name",
        "item__unit",
        "location__code",
        "lot__code",
        "qty_at",
        "updated_at",
    )
    out = [writer.writerow(HEADER)]
    for sku, name, unit, location, lot, qty, updated_at in qs:
        out.append(
            writer.writerow(
                (
                    csv_text(sku),
                    csv_text(name),
                    unit,
                    csv_text(location),
                    csv_text(lot) if lot is not None else "",
                    fmt_qty(qty),
                    updated_at.isoformat(),
                )
            )
        )
    return "".join(out).encode()
