"""The COPY writer of the ledger: the demo data loads its rows through `ledger_rows_copy`, the
CSV import's direct path (inventory/services/importer_direct.py) its text lines through
`ledger_copy_text`. COPY is one INSERT statement as far as the triggers go, so the balance
trigger runs once for the whole COPY (one upsert per key, not per row). (The import's staged
path COPYs raw cells into a staging table instead and writes the ledger with one INSERT ...
SELECT: inventory/services/importer.py.)

It writes what it is given: the rows are checked before, by the one row validation
(inventory/services/ledger_rows.py), and their item, location and lot ids resolved.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.utils import timezone

# (item_id, location_id, lot_id or None, qty_canonical, kind, reference, occurred_at)
LedgerCopyRow = tuple[int, int, int | None, Decimal, str, str, datetime]

_COPY = (
    "COPY inventory_ledger (item_id, location_id, lot_id, qty_canonical, kind, reference, "
    "occurred_at, recorded_at, recorded_by, posting_id) FROM STDIN"
)


# The columns a row varies in, for a load whose posting, time and author are the columns'
# defaults meanwhile (ledger_bulk_load.ledger_bulk_load_constants).
_COPY_VARYING = (
    "COPY inventory_ledger (item_id, location_id, lot_id, qty_canonical, kind, reference, "
    "occurred_at) FROM STDIN"
)


def ledger_copy_text(cursor):
    """A COPY into the tenant's ledger of the varying columns above, in PostgreSQL's text
    format, for a writer that formats its own lines (tab-separated, `\\N` for no lot, text
    escaped): psycopg's Copy, a context manager whose write() takes any number of lines, and
    whose end is the end of the statement (the balance trigger runs then). `cursor`: Django's
    cursor, whose search_path django-tenants has set to the tenant."""
    return cursor.cursor.copy(_COPY_VARYING)


def ledger_rows_copy(
    rows: Iterable[LedgerCopyRow],
    *,
    recorded_by: str,
    posting_id: int | None = None,
    recorded_at: datetime | None = None,
) -> int:
    """COPY `rows` into the current tenant's ledger, all with the same recorded_at (now by
    default), recorded_by and posting; returns how many were written. `rows` may be a
    generator (the demo's 100,000 rows are never held in memory). Run it in a transaction with
    whatever else the load creates: a failure then leaves nothing behind."""
    recorded_at = recorded_at or timezone.now()
    recorded_by = recorded_by[:200]
    written = 0
    with connection.cursor() as cursor:
        # The psycopg cursor: django-tenants has set its search_path to the tenant.
        with cursor.cursor.copy(_COPY) as copy:
            for item_id, location_id, lot_id, qty, kind, reference, occurred_at in rows:
                copy.write_row(
                    (
                        item_id,
                        location_id,
                        lot_id,
                        qty,
                        kind,
                        reference,
                        occurred_at,
                        recorded_at,
                        recorded_by,
                        posting_id,
                    )
                )
                written += 1
    return written
