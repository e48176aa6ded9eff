"""A plain CSV file (no double quote, carriage return or NUL) is split at commas instead of by
the csv module (inventory/services/importer.py, _stage_plain). It must read exactly as the csv
module reads it: the same file with one harmless quoted cell (which sends it through csv)
gives the same ledger rows, and a bad one the same problems, line for line."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from inventory.services.errors import ValidationFailed
from inventory.services.importer import _plain_cells, ledger_import_csv

pytestmark = pytest.mark.django_db

HEADER = "sku,item_name,unit,location,qty,kind,reference,occurred_at\n"
# Spaces, a tab and a backslash inside cells, Unicode spaces at the ends (str.strip drops them),
# blank lines, a short row (padded), a row with empty extra values (dropped), non-ASCII text.
ROWS = [
    "FL-1, Flour ,g,WH-A,10,receipt,plain,2025-01-01T00:00:00Z\n",
    "\n",
    "FL-1,,,WH-A,-2,issue,tab\there,\n",
    "FL-1,,,WH-A ,-1,issue,back\\slash \\N,2025-01-02T00:00:00Z\n",
    "OIL-1,Öl\u00a0,ml,WH-B,\u20035,receipt,ünïcödé\u3000,\n",
    "OIL-1,,,WH-B,1,adjustment\n",
    "OIL-1,,,WH-B,2,receipt,trailing,,,\n",
    "\n",
]


def quoted(rows: list[str]) -> list[str]:
    """The same rows with the first cell quoted: the csv module's path, same values."""
    first, rest = rows[0].split(",", 1)
    return [f'"{first}",{rest}', *rows[1:]]


def ledger(schema: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT i.sku, i.name, i.unit, c.code, e.qty_canonical, e.kind, e.reference, "
            f"e.occurred_at::text "
            f'FROM "{schema}".inventory_ledger e '
            f'JOIN "{schema}".inventory_items i ON i.id = e.item_id '
            f'JOIN "{schema}".inventory_locations c ON c.id = e.location_id '
            "WHERE e.occurred_at < '2026-01-01' OR e.reference <> '' ORDER BY e.id"
        )
        return [row[:7] for row in cursor.fetchall()]


def test_a_plain_file_reads_as_the_csv_module_reads_it(acme, globex, tmp_path):
    plain, through_csv = tmp_path / "plain.csv", tmp_path / "quoted.csv"
    plain.write_text(HEADER + "".join(ROWS), encoding="utf-8")
    through_csv.write_text(HEADER + "".join(quoted(ROWS)), encoding="utf-8")
    with schema_context("acme"):
        a = ledger_import_csv(path=plain)
    with schema_context("globex"):
        b = ledger_import_csv(path=through_csv)
    assert a.rows == b.rows == 6
    rows = ledger("acme")
    assert rows == ledger("globex")
    assert rows[0][1] == "Flour" and rows[1][6] == "tab\there"
    assert rows[2][3] == "WH-A" and rows[2][6] == "back\\slash \\N"
    assert rows[3][1] == "Öl" and rows[3][6] == "ünïcödé"


BAD = [
    "FL-1,Flour,g,WH-A,10,receipt,ok,\n",
    "FL-1,,,WH-A,1.2.3,issue,bad qty,\n",
    "\n",
    "FL-1,,,WH-A,1,receipt,r,2025-01-01T00:00:00Z,extra\n",
    "FL-1,,,WH-A,1,sideways\n",
]


def test_a_bad_plain_file_gets_the_problems_the_csv_module_path_gives(acme, tmp_path):
    errors = []
    for name, rows in (("plain.csv", BAD), ("quoted.csv", quoted(BAD))):
        path = tmp_path / name
        path.write_text(HEADER + "".join(rows), encoding="utf-8")
        with schema_context("acme"), pytest.raises(ValidationFailed) as err:
            ledger_import_csv(path=path)
        errors.append((err.value.message, err.value.fields))
    assert errors[0] == errors[1]
    assert errors[0][0] == "3 line(s) are invalid; nothing was imported."
    assert list(errors[0][1]) == ["line 3, column qty", "line 5", "line 6, column kind"]


@pytest.mark.parametrize(
    "line",
    ["a,b,c\n", "a,b,c", ",\n", "\n", " x , y \n", "a\tb,\\N\n", "a,,\n", "é,\u2028,\u00a0\n"],
)
def test_plain_cells_are_what_the_csv_module_reads(line):
    import csv

    assert _plain_cells(line) == (next(csv.reader([line])) or [""])
