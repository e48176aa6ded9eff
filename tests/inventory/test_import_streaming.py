"""The streaming import (issue 18.4): bounded memory, set-wise checks that still name line and
column and keep nothing, import-once, the stock policy, values only Python can read."""

from __future__ import annotations

import os
import random
import sys
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django_tenants.utils import schema_context

from bench.child_rss import run_measured
from inventory.models import Balance, Item, LedgerEntry, Location, Lot, Posting
from inventory.services.ledger_rows import timestamp_problem
from inventory.services.stock_policy import policy_set
from tests.inventory.helpers import balance_mismatches, count_rows

HEADER = "sku,item_name,unit,location,lot,lot_expires_on,qty,kind,reference,occurred_at\n"
TABLES = ("inventory_ledger", "inventory_items", "inventory_locations", "inventory_lots")


def generated(path, rows: int, *, seed: int = 18) -> Decimal:
    """A ledger file of `rows` random movements over 500 items and 20 locations; returns the
    sum of its quantities."""
    rnd, total = random.Random(seed), Decimal(0)
    with open(path, "w", encoding="utf-8") as f:
        f.write(HEADER)
        for i in range(rows):
            item, loc = rnd.randrange(500), rnd.randrange(20)
            lot, expires = (f"L-{item % 3}", "2027-03-31") if item % 10 == 0 else ("", "")
            qty = Decimal(rnd.randrange(-99999, 99999) or 1) / 100
            total += qty
            f.write(
                f"SKU-{item:04d},Item {item},g,WH-{loc:02d},{lot},{expires},{qty},"
                f"{'receipt' if qty > 0 else 'issue'},R-{i},2025-{1 + i % 12:02d}-"
                f"{1 + i % 28:02d}T{i % 24:02d}:00:00Z\n"
            )
    return total


def write(tmp_path, text: str, name: str = "ledger.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _test_db_url() -> str:
    return urlunsplit(
        urlsplit(settings.DATABASE_URL)._replace(path=f"/{connection.settings_dict['NAME']}")
    )


def run_command(*args: str) -> tuple[int, str, str, int]:
    """manage.py in its own process against this run's test database: (exit status, stdout,
    stderr, peak RSS of that process alone in MB; see bench/child_rss.py)."""
    return run_measured(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=os.environ | {"DATABASE_URL": _test_db_url()},
        timeout=300,
    )


def test_it_imports_200k_rows_in_bounded_memory(committed, tmp_path):
    """The old import read the file whole and built a Python object per row: 1.16 GB of RSS at
    10^6 rows, ~290 MB at 200,000. The streamed one stays at the size of a Django process."""
    path = tmp_path / "big.csv"
    total = generated(path, 200_000)
    status, out, err, peak_mb = run_command("import_ledger", "--schema", "acme", str(path))
    assert status == 0, err[-3000:]
    assert "imported 200000 ledger rows (500 items, 20 locations, 50 lots created)" in out
    assert peak_mb < 150, f"peak RSS {peak_mb} MB"
    assert count_rows("acme", "inventory_ledger") == 200_000
    assert balance_mismatches("acme") == []
    with schema_context("acme"):
        assert sum(b.qty_canonical for b in Balance.objects.all()) == total
        assert Posting.objects.get().entry_count == 200_000


def test_it_reports_bad_lines_of_a_large_file_set_wise_and_keeps_nothing(acme, tmp_path):
    path = tmp_path / "big.csv"
    generated(path, 20_000)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    # A new item given two units, an existing one given another unit, a bad new location
    # code, a 7-decimal quantity, an impossible date, a bad kind: deep in the file.
    lines[5_000] = "NEW-1,New,g,WH-00,,,5,receipt,,\n"
    lines[5_001] = "NEW-1,New,kg,WH-00,,,5,receipt,,\n"
    lines[12_000] = "SKU-0001,,ml,WH-00,,,5,receipt,,\n"  # SKU-0001 is in g
    lines[15_000] = "SKU-0002,,g,WH 9,,,5,receipt,,\n"
    lines[17_000] = "SKU-0002,,g,WH-01,,,0.0000001,receipt,,\n"
    lines[18_000] = "SKU-0002,,g,WH-01,,,1,receipt,,2026-02-30T00:00:00Z\n"
    lines[19_000] = "SKU-0002,,g,WH-01,,,1,theft,,\n"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(CommandError) as err:
        call_command("import_ledger", "--schema", "acme", str(path))
    shown = str(err.value).splitlines()
    assert shown[-1] == "6 line(s) are invalid; nothing was imported."
    assert shown[:-1] == [
        "line 5002, column unit: item 'NEW-1' has unit 'g' on an earlier line",
        "line 12001, column unit: item 'SKU-0001' has unit 'g' on an earlier line",
        "line 15001, column location: new location 'WH 9': use 1-64 letters, digits, '.', "
        "'_', '/' or '-', starting with a letter or digit",
        "line 17001, column qty: at most 6 decimal places are allowed",
        "line 18001, column occurred_at: '2026-02-30T00:00:00Z' is not a real date-time "
        "(an ISO 8601 date-time, e.g. 2026-11-24T09:30:00Z)",
        "line 19001, column kind: unknown movement kind 'theft'; use one of receipt, issue, "
        "transfer_in, transfer_out, adjustment, count, opening",
    ]
    assert all(count_rows("acme", table) == 0 for table in (*TABLES, "inventory_postings"))


def test_it_counts_every_bad_line_and_shows_the_first_fifty(acme, tmp_path):
    text = HEADER + "".join(f"FL-1,Flour,g,WH-A,,,{i}.1234567,receipt,,\n" for i in range(1000))
    with pytest.raises(CommandError) as err:
        call_command("import_ledger", "--schema", "acme", write(tmp_path, text))
    shown = str(err.value).splitlines()
    assert shown[-1] == "1000 line(s) are invalid; nothing was imported."
    assert len(shown) == 51 and shown[0].startswith("line 2, column qty: ")
    assert shown[49].startswith("line 51, column qty: ")
    assert count_rows("acme", "inventory_items") == 0


def test_it_leaves_the_catalog_as_it_was_when_a_file_is_refused(acme, tmp_path):
    call_command("import_ledger", "--schema", "acme", write(tmp_path, HEADER + GOOD_ROW))
    before = {table: count_rows("acme", table) for table in TABLES}
    bad = HEADER + "NEW-2,New,g,WH-NEW,L-NEW,2027-01-01,5,receipt,,\n" + "FL-1,,g,WH-A,,,x,receipt,,\n"
    with pytest.raises(CommandError, match="line 3, column qty: 'x' is not a decimal number"):
        call_command("import_ledger", "--schema", "acme", write(tmp_path, bad, "bad.csv"))
    assert {table: count_rows("acme", table) for table in TABLES} == before


GOOD_ROW = "FL-1,Flour,g,WH-A,,,10,receipt,R-1,2025-01-01T00:00:00Z\n"


def test_a_streamed_file_is_imported_once_with_or_without_a_bom(acme, tmp_path):
    text = HEADER + GOOD_ROW
    call_command("import_ledger", "--schema", "acme", write(tmp_path, text))
    with_bom = tmp_path / "bom.csv"
    with_bom.write_bytes(b"\xef\xbb\xbf" + text.encode())
    with pytest.raises(CommandError, match="This file was already imported on "):
        call_command("import_ledger", "--schema", "acme", str(with_bom))
    assert count_rows("acme", "inventory_ledger") == 1
    with schema_context("acme"):
        import hashlib

        key = Posting.objects.get().idempotency_key
    assert key == f"import:sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def test_a_file_that_is_not_utf8_names_the_byte(acme, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"sku,location,qty,kind\nFL-1,WH-\xe9,5,receipt\n")
    with pytest.raises(CommandError) as err:
        call_command("import_ledger", "--schema", "acme", str(path))
    assert str(err.value) == (
        f"{path} is not UTF-8 text: 'utf-8' codec can't decode byte 0xe9 in position 30: "
        "invalid continuation byte"
    )
    assert count_rows("acme", "inventory_postings") == 0


def test_the_stock_policy_refuses_a_streamed_import_whole(acme, tmp_path):
    with schema_context("acme"):
        policy_set(no_negative_stock=True)
    text = (
        HEADER
        + GOOD_ROW
        + "FL-1,Flour,g,WH-A,,,-4,issue,R-2,\n"
        + "OIL-1,Oil,ml,WH-B,,,-3,issue,R-3,\n"
        + "FL-1,Flour,g,WH-A,,,-7,issue,R-4,\n"
    )
    with pytest.raises(CommandError) as err:
        call_command("import_ledger", "--schema", "acme", write(tmp_path, text))
    assert str(err.value).splitlines()[-1] == (
        "Not enough stock; nothing was posted. FL-1 at WH-A: balance 0.000000, short by "
        "1.000000; OIL-1 at WH-B: balance 0.000000, short by 3.000000."
    )
    assert all(count_rows("acme", table) == 0 for table in (*TABLES, "inventory_postings"))
    with schema_context("acme"):
        assert Balance.objects.count() == 0


def test_values_only_python_reads_are_read_as_the_api_reads_them(acme, tmp_path):
    """Date-only and fractional times, a basic-format expiry: the SQL checks leave them to
    Python, which parses them as the API does."""
    odd = ["2025-03-01", "2025-03-01T10:00:00.5+02:00", "20250301T101500", "2025-03-01 10:00"]
    text = HEADER + "".join(
        f"FL-1,Flour,g,WH-A,L-1,20270331,1,receipt,R-{i},{stamp}\n" for i, stamp in enumerate(odd)
    )
    call_command("import_ledger", "--schema", "acme", write(tmp_path, text))
    with schema_context("acme"):
        stored = dict(LedgerEntry.objects.values_list("reference", "occurred_at"))
        assert str(Lot.objects.get(code="L-1").expires_on) == "2027-03-31"
    for i, stamp in enumerate(odd):
        assert stored[f"R-{i}"] == timestamp_problem(stamp)[0], stamp
    assert stored["R-1"] == datetime(2025, 3, 1, 8, 0, 0, 500000, tzinfo=UTC)


def test_each_items_rows_keep_the_files_order(acme, tmp_path):
    text = HEADER + "".join(
        f"{sku},N,g,WH-A,,,{n},receipt,R-{n},\n"
        for n, sku in enumerate(["B-1", "A-1", "B-1", "A-1", "B-1"], start=1)
    )
    call_command("import_ledger", "--schema", "acme", write(tmp_path, text))
    with schema_context("acme"):
        for sku in ("A-1", "B-1"):
            refs = list(
                LedgerEntry.objects.filter(item__sku=sku).order_by("id").values_list(
                    "reference", flat=True
                )
            )
            assert refs == sorted(refs), refs
        assert Item.objects.count() == 2 and Location.objects.count() == 1


def _tricky_values():
    qty = ["1", "-1", "0", "-0", "0.000", "000000000001", "999999999999", "1000000000000",
           "0999999999999", "1.123456", "1.1234567", "1.1234560", "1.12345600000", "-0.000001",
           "+1", "1e3", ".5", "5.", "--1", "1_000", "\u0661", "1.5.5", "-", "12345678901.5"]
    days = [f"{y}-{m:02d}-{d:02d}" for y in (1900, 2000, 2023, 2024, 2100, 2199)
            for m, d in ((2, 28), (2, 29), (2, 30), (4, 30), (4, 31), (12, 31), (13, 1), (0, 1))]
    days += ["1899-12-31", "2200-01-01", "0001-01-01", "9999-12-31", "2024-1-5", "20240105"]
    stamps = [f"{day}T10:00:00Z" for day in days]
    stamps += [f"2024-03-01{sep}{t}{z}" for sep in "T " for t in ("23:59:59", "24:00:00",
               "23:60:00", "23:59:60", "00:00") for z in ("", "Z", "z", "+15:59", "-15:59",
               "+16:00", "+05:30", "-0530", "+05", ".5Z")]
    return qty, stamps, days


def test_the_sql_sieve_flags_every_value_the_python_rules_refuse(acme, tmp_path):
    """Differential: each value on its own line of an otherwise good file; the lines the import
    refuses are exactly those the API's Python rules refuse, and the others, imported alone,
    are stored as Python reads them."""
    from inventory.services.catalog import expiry_date_problem
    from inventory.services.ledger_rows import quantity_problem

    qty, stamps, days = _tricky_values()
    rows = [(q, "", "") for q in qty] + [("1", s, "") for s in stamps]
    rows += [("1", "", d) for d in days]
    bad = set()
    for line, (q, stamp, expiry) in enumerate(rows, start=2):
        if quantity_problem(q)[1] or (stamp and timestamp_problem(stamp)[1]):
            bad.add(line)
        if expiry and expiry_date_problem(expiry)[1]:
            bad.add(line)
    assert 40 < len(bad) < len(rows) - 40  # both kinds well represented

    def row(n, q, stamp, expiry):
        lot = f"L-{n}" if expiry else ""
        return f"FL-1,Flour,g,WH-A,{lot},{expiry},{q},receipt,R-{n},{stamp}\n"

    text = HEADER + "".join(row(n, *r) for n, r in enumerate(rows))
    with pytest.raises(CommandError) as err:
        call_command("import_ledger", "--schema", "acme", write(tmp_path, text))
    shown = str(err.value).splitlines()
    assert shown[-1] == f"{len(bad)} line(s) are invalid; nothing was imported."
    assert {int(s.split(",")[0].split()[1]) for s in shown[:-1]} == set(sorted(bad)[:50])

    good = [(n, r) for n, r in enumerate(rows) if n + 2 not in bad]
    text = HEADER + "".join(row(n, *r) for n, r in good)
    call_command("import_ledger", "--schema", "acme", write(tmp_path, text, "good.csv"))
    with schema_context("acme"):
        stored = {e.reference: e for e in LedgerEntry.objects.select_related("lot")}
        assert len(stored) == len(good)
        for n, (q, stamp, expiry) in good:
            entry = stored[f"R-{n}"]
            assert entry.qty_canonical == quantity_problem(q)[0], q
            if stamp:
                assert entry.occurred_at == timestamp_problem(stamp)[0], stamp
            if expiry:
                assert entry.lot.expires_on == expiry_date_problem(expiry)[0], expiry
