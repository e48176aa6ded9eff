"""CSV import of an existing ledger: all rows or none, errors by line number."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
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
