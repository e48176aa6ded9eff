"""CSV import of an existing ledger: all rows or none, errors by line number."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django_tenants.utils import schema_context

from inventory.models import Item, LedgerEntry, Location, Lot
from tests.inventory.helpers import balance_mismatches, count_rows

pytestmark = pytest.mark.django_db

GOOD = """sku,item_name,unit,location,location_name,lot,lot_expires_on,qty,kind,reference,occurred_at
FL-1,Flour,g,WH-A,Warehouse A,,,1000.5,opening,OLD-1,2025-01-01T00:00:00Z
FL-1,Flour,g,WH-A,Warehouse A,,,-200,issue,OLD-2,2025-01-02T00:00:00Z
OIL-1,Olive oil,ml,WH-B,,L-77,2027-03-31,750.25,receipt,OLD-3,2025-01-03T10:00:00
OIL-1,,,WH-B,,L-77,,-0.25,adjustment,,
"""


def write(tmp_path, text, name="ledger.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_it_imports_history_creating_items_locations_and_lots(acme, tmp_path, capsys):
    call_command("import_ledger", "--schema", "acme", write(tmp_path, GOOD))
    assert (
        "imported 4 ledger rows (2 items, 2 locations, 1 lots created)" in capsys.readouterr().out
    )
    with schema_context("acme"):
        assert Item.objects.get(sku="OIL-1").unit == "ml"
        assert Location.objects.get(code="WH-A").name == "Warehouse A"
        assert str(Lot.objects.get(code="L-77").expires_on) == "2027-03-31"
        assert (
            LedgerEntry.objects.filter(reference="OLD-1").get().recorded_by == "import:ledger.csv"
        )
    assert balance_mismatches("acme") == []
    with schema_context("acme"):
        from inventory.models import Balance

        assert {b.qty_canonical for b in Balance.objects.all()} == {
            Decimal("800.5"),
            Decimal("750"),
        }
    assert count_rows("globex", "inventory_ledger") == 0


def test_a_forced_second_import_reuses_existing_items(acme, tmp_path):
    call_command("import_ledger", "--schema", "acme", write(tmp_path, GOOD))
    call_command("import_ledger", "--schema", "acme", "--force", write(tmp_path, GOOD))
    with schema_context("acme"):
        assert Item.objects.count() == 2 and LedgerEntry.objects.count() == 8
    assert balance_mismatches("acme") == []


def test_it_reports_bad_rows_by_line_and_writes_nothing(acme, tmp_path):
    bad = (
        GOOD
        + "NEW-1,New,,WH-A,,,,5,receipt,,\nFL-1,,g,WH-A,,,,NaN,receipt,,\nFL-1,,kg,WH-A,,,,1,teleport,,yesterday\n"
    )
    with pytest.raises(CommandError) as err:
        call_command("import_ledger", "--schema", "acme", write(tmp_path, bad))
    message = str(err.value)
    assert message.endswith("3 line(s) are invalid; nothing was imported.")
    assert "line 6, column unit: new item 'NEW-1' needs a unit" in message
    assert "line 7, column qty: NaN is not a quantity" in message
    assert "line 8, column kind: unknown movement kind 'teleport'" in message
    assert "line 8, column occurred_at: use an ISO 8601 date-time" in message
    assert count_rows("acme", "inventory_ledger") == 0
    with schema_context("acme"):
        assert Item.objects.count() == 0 and Location.objects.count() == 0


def test_it_explains_a_bad_header_or_file(acme, tmp_path):
    with pytest.raises(CommandError, match="missing column\\(s\\): qty, kind"):
        call_command("import_ledger", "--schema", "acme", write(tmp_path, "sku,location\nA,B\n"))
    with pytest.raises(CommandError, match="line 1, column colour: unknown column .colour."):
        call_command(
            "import_ledger", "--schema", "acme", write(tmp_path, "sku,location,qty,kind,colour\n")
        )
    with pytest.raises(CommandError, match="no ledger rows"):
        call_command(
            "import_ledger", "--schema", "acme", write(tmp_path, "sku,location,qty,kind\n")
        )
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_ledger", "--schema", "acme", str(tmp_path / "missing.csv"))
    with pytest.raises(CommandError, match="No tenant schema"):
        call_command("import_ledger", "--schema", "nope", write(tmp_path, GOOD))


def test_the_demo_ledger_loads_once(db):
    from inventory.demo import demo_ledger_ensure
    from tenants.services import organization_create

    org, _ = organization_create(slug="demo-test", name="Demo")
    summary = demo_ledger_ensure(organization=org, rows=3000)
    assert "3000 ledger rows" in summary
    assert demo_ledger_ensure(organization=org, rows=3000) is None
    assert count_rows("demo_test", "inventory_ledger") == 3000
    assert balance_mismatches("demo_test") == []


HEADER = "sku,item_name,unit,location,location_name,site,lot,lot_expires_on,qty,kind,reference,occurred_at\n"
OK_ROW = "FL-1,Flour,g,WH-A,Warehouse A,HQ,,,5,receipt,R-1,2026-01-01T00:00:00Z\n"


def row(**over):
    values = dict(
        zip(
            HEADER.strip().split(","),
            "FL-1,Flour,g,WH-A,Warehouse A,HQ,,,5,receipt,R-2,2026-01-02T00:00:00Z".split(","),
            strict=True,
        )
    )
    values.update(over)
    return ",".join(values.values()) + "\n"


OFFSET = "the UTC offset must be between -15:59 and +15:59"
BAD_FILES = [
    ("bad date", row(occurred_at="2026-02-30T00:00:00"), "occurred_at", "is not a real date-time"),
    ("bad month", row(occurred_at="2026-13-01T00:00:00"), "occurred_at", "is not a real date-time"),
    ("bad hour", row(occurred_at="2026-01-01T25:00:00"), "occurred_at", "is not a real date-time"),
    (
        "bad expiry",
        row(lot="L-1", lot_expires_on="2027-02-30"),
        "lot_expires_on",
        "is not a real date",
    ),
    ("bad expiry text", row(lot="L-1", lot_expires_on="soon"), "lot_expires_on", "ISO date"),
    ("offset +23:00", row(occurred_at="2026-01-01T00:00:00+23:00"), "occurred_at", OFFSET),
    ("offset -16:59", row(occurred_at="2026-01-01T00:00:00-16:59"), "occurred_at", OFFSET),
    ("offset +99:00", row(occurred_at="2026-01-01T00:00:00+99:00"), "occurred_at", OFFSET),
    ("huge qty", row(qty="1e999999999"), "qty", "is not a decimal number"),
    ("huge qty 2", row(qty="1e+999999999999999999"), "qty", "is not a decimal number"),
    ("tiny qty", row(qty="-1e-999999999"), "qty", "is not a decimal number"),
    ("too many digits", row(qty="1000000000000"), "qty", "too many digits"),
    ("too many decimals", row(qty="0.0000001"), "qty", "at most 6 decimal places"),
    ("arabic-indic digits", row(qty="\u0661\u0662"), "qty", "is not a decimal number"),
    ("underscore", row(qty="1_000"), "qty", "is not a decimal number"),
    ("plus sign", row(qty="+5"), "qty", "is not a decimal number"),
    ("NUL in reference", row(reference="R\x00-9"), "reference", "contains a NUL character"),
    ("NUL in sku", row(sku="FL\x00-1"), "sku", "contains a NUL character"),
    ("NUL in name", row(item_name="Fl\x00our", sku="NEW-1"), "item_name", "contains a NUL"),
    ("long sku", row(sku="S" * 65), "sku", "item has at most 64 characters"),
    ("long location", row(location="L" * 65), "location", "location has at most 64 characters"),
    ("long lot", row(lot="L" * 65), "lot", "lot has at most 64 characters"),
    ("long item name", row(sku="NEW-1", item_name="n" * 201), "item_name", "at most 200"),
    (
        "long location name",
        row(location="WH-N", location_name="n" * 201),
        "location_name",
        "at most 200",
    ),
    ("long site", row(location="WH-N", site="s" * 101), "site", "at most 100 characters"),
    ("long reference", row(reference="r" * 201), "reference", "at most 200 characters"),
    ("full-width sku", row(sku="\uff26\uff2c-1"), "sku", "new item"),
    ("full-width location", row(location="\uff37\uff28"), "location", "new location"),
    ("bad lot code", row(lot="L 1"), "lot", "new lot"),
    ("bad kind", row(kind="theft"), "kind", "unknown movement kind 'theft'"),
    ("empty qty", row(qty=""), "qty", "a quantity is required"),
    ("empty kind", row(kind=""), "kind", "a movement kind is required"),
]


@pytest.mark.parametrize(
    ("name", "bad", "column", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES]
)
def test_it_names_line_and_column_of_a_bad_file_and_keeps_nothing(
    acme, tmp_path, name, bad, column, message
):
    text = HEADER + OK_ROW + OK_ROW.replace("R-1", "R-3") + bad
    with pytest.raises(CommandError) as err:
        call_command("import_ledger", "--schema", "acme", write(tmp_path, text))
    lines = str(err.value).splitlines()
    assert lines[-1] == "1 line(s) are invalid; nothing was imported.", lines
    assert len(lines) == 2 and lines[0].startswith(f"line 4, column {column}: "), lines
    assert message in lines[0], lines
    assert count_rows("acme", "inventory_ledger") == 0
    assert count_rows("acme", "inventory_items") == 0
    assert count_rows("acme", "inventory_postings") == 0


def test_it_refuses_a_duplicated_column(acme, tmp_path):
    text = "sku,location,qty,kind,qty\nFL-1,WH-A,5,receipt,-500\n"
    with pytest.raises(CommandError) as err:
        call_command("import_ledger", "--schema", "acme", write(tmp_path, text))
    assert str(err.value).splitlines()[0] == (
        "line 1, column qty: column 'qty' appears twice (columns 3 and 5)"
    )
    assert count_rows("acme", "inventory_ledger") == 0


def test_it_refuses_two_rows_that_overflow_a_balance(acme, tmp_path):
    """Against a balance column of NUMERIC(18,6) (as before the widening, or a schema rolled
    back to it): the sum of two rows no longer fits. The ALTER is rolled back with the test."""
    with schema_context("acme"), connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE inventory_balances ALTER COLUMN qty_canonical TYPE numeric(18,6)"
        )
    text = HEADER + row(qty="999999999999") + OK_ROW + row(qty="999999999999", reference="R-9")
    with pytest.raises(CommandError) as err:
        call_command("import_ledger", "--schema", "acme", write(tmp_path, text))
    assert str(err.value).splitlines()[0] == (
        "line 4, column qty: the balance of FL-1 at WH-A would be 2000000000003, beyond what the "
        "balance table holds (less than 1,000,000,000,000 in size)"
    )
    assert count_rows("acme", "inventory_ledger") == 0


def test_the_same_file_is_imported_once_unless_forced(acme, tmp_path):
    path = write(tmp_path, GOOD)
    call_command("import_ledger", "--schema", "acme", path)
    again = write(tmp_path, GOOD, name="renamed-copy.csv")  # the content counts, not the name
    with pytest.raises(CommandError) as err:
        call_command("import_ledger", "--schema", "acme", again)
    assert "This file was already imported on " in str(err.value)
    assert "(4 rows, posting " in str(err.value) and "use --force" in str(err.value)
    assert count_rows("acme", "inventory_ledger") == 4
    call_command("import_ledger", "--schema", "acme", "--force", again)
    assert count_rows("acme", "inventory_ledger") == 8
    with schema_context("acme"):
        from inventory.models import Posting

        postings = list(Posting.objects.order_by("id"))
        assert [p.entry_count for p in postings] == [4, 4]
        assert postings[0].idempotency_key.startswith("import:sha256:")
        assert postings[1].idempotency_key is None and postings[1].recorded_by.endswith("(forced)")
        assert LedgerEntry.objects.filter(posting=postings[0]).count() == 4
    assert balance_mismatches("acme") == []


def test_a_batch_key_is_imported_once(acme, tmp_path):
    call_command(
        "import_ledger", "--schema", "acme", "--batch-key", "old-2026-11", write(tmp_path, GOOD)
    )
    other = write(tmp_path, GOOD.replace("OLD-1", "OLD-X"), name="other.csv")
    with pytest.raises(CommandError, match="Batch key 'old-2026-11' was already imported"):
        call_command("import_ledger", "--schema", "acme", "--batch-key", "old-2026-11", other)
    assert count_rows("acme", "inventory_ledger") == 4
    with pytest.raises(CommandError, match="batch key must not contain NUL"):
        call_command("import_ledger", "--schema", "acme", "--batch-key", "a\x00", other)


def test_a_bad_file_exits_1_with_the_message_and_no_traceback(acme, tmp_path):
    import os
    import subprocess
    import sys
    from urllib.parse import urlsplit, urlunsplit

    from django.conf import settings

    # The development server's URL, pointed at this run's test database.
    url = urlunsplit(
        urlsplit(settings.DATABASE_URL)._replace(path=f"/{connection.settings_dict['NAME']}")
    )
    path = write(tmp_path, HEADER + OK_ROW + row(qty="1e999999999"))
    done = subprocess.run(
        [sys.executable, "manage.py", "import_ledger", "--schema", "acme", path],
        cwd=settings.BASE_DIR,
        env=os.environ | {"DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "line 3, column qty: '1e999999999' is not a decimal number" in done.stderr


@pytest.mark.parametrize(
    ("text", "first_line"),
    [
        (
            HEADER + OK_ROW + "FL-1," + "x" * 200_000 + ",g,WH-A,,,,,5,receipt,,\n",
            "line 3: the CSV is malformed: field larger than field limit (131072)",
        ),
        (HEADER + OK_ROW + OK_ROW.strip() + ",extra\n", "line 3: 13 values for 12 columns"),
        (
            "sku,loc\x00ation,qty,kind\nFL-1,WH-A,5,receipt\n",
            "line 1, column loc\\x00ation: unknown column 'loc\\x00ation'; allowed: sku, location, "
            "qty, kind, item_name, unit, location_name, site, lot, lot_expires_on, reference, "
            "occurred_at",
        ),
        (
            HEADER + 'FL-1,"Flour\non two lines",g,WH-A,,,,,5,receipt,,\n' + row(qty="+5"),
            "line 4, column qty: '+5' is not a decimal number (use digits 0-9, an optional "
            "leading '-' and '.' for decimals, e.g. -12.5)",
        ),
    ],
    ids=["huge field", "too many values", "NUL in header", "line numbers after a two-line cell"],
)
def test_it_names_the_line_of_a_malformed_file(acme, tmp_path, text, first_line):
    with pytest.raises(CommandError) as err:
        call_command("import_ledger", "--schema", "acme", write(tmp_path, text))
    assert str(err.value).splitlines()[0] == first_line
    assert count_rows("acme", "inventory_ledger") == 0
