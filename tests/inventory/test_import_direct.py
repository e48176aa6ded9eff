"""The import's direct path (inventory/services/importer_direct.py): a plain file bulk loaded
into a small ledger is checked in Python as it is read and COPYed straight into the ledger.
It must write what the staged path writes (ledger rows, catalogue, balances, posting), and
every file it is not sure of must get the staged path's answer, with nothing of its own try
left behind. Its sieve must let through exactly what the SQL sieve lets through."""

from __future__ import annotations

import itertools
import random
import time

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import schema_context

from inventory.services import importer_direct
from inventory.services import importer_sql as sql
from inventory.services.errors import ValidationFailed
from inventory.services.importer import ledger_import_csv
from inventory.services.stock_policy import InsufficientStock, policy_set
from tests.inventory.helpers import balance_mismatches, count_rows
from tests.inventory.test_import_bulk import ledger_definition

HEADER = (
    "sku,item_name,unit,location,location_name,site,lot,lot_expires_on,qty,kind,reference,"
    "occurred_at\n"
)


def rich_rows() -> list[str]:
    """New items, locations and lots named all through the file (so later batches bring new
    codes), their definitions on the first line naming each, blank lines, a short row, empty
    extra values, a tab and backslashes in references, every date-time form the sieve lets
    through, and empty occurred_at (now)."""
    times = [
        "2025-01-01T00:00:00Z",
        "2024-02-29 23:59:59Z",
        "2025-03-31T12:00:00+05:30",
        "2025-04-30T08:15:00-15:59",
        "2199-12-31T23:59:59Z",
        "1900-01-01 00:00:00",  # naive: read as UTC (TIME_ZONE is UTC in the tests)
        "",
    ]
    out = []
    for r in range(240):
        item, loc = r % 11 + (r // 60) * 11, r % 4 + (r // 80) * 4
        first_of_item = r % 60 < 11  # each block of 60 rows names 11 new items first
        unit = "ea" if item % 2 else "g"
        lot = f"LOT-{r % 3}" if r % 5 == 0 else ""
        expires = "2027-02-28" if lot and r % 2 == 0 else ""
        ref = ["plain", "tab\there", "back\\slash \\N", ""][r % 4] + f"-{r}"
        qty = ["5", "-1.5", "0.000001", "2.25", "-999999999999.999999"][r % 5]
        kind = "issue" if qty.startswith("-") else "receipt"
        out.append(
            f"SKU-{item},{'Item ' + str(item) if first_of_item else ''},"
            f"{unit if first_of_item or r % 3 == 0 else ''},"
            f"WH-{loc},Store {loc},Site {loc % 2},{lot},{expires},{qty},{kind},{ref},"
            f"{times[r % len(times)]}\n"
        )
        if r % 50 == 7:
            out.append("\n")
    out.append("SKU-1,,,WH-1,,,,,3,receipt,short\n")  # short: padded
    out.append("SKU-1,,,WH-1,,,,,4,receipt,extras,2025-01-01T00:00:00Z,,,\n")  # empty extras
    return out


def write(tmp_path, rows: list[str], name: str = "ledger.csv") -> str:
    path = tmp_path / name
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return str(path)


def everything(schema: str) -> dict:
    """What an import leaves, by codes (ids differ between the paths)."""
    with connection.cursor() as cursor:

        def rows(query):
            cursor.execute(query.replace("S.", f'"{schema}".'))
            return cursor.fetchall()

        return {
            "ledger": sorted(
                rows(
                    "SELECT i.sku, c.code, coalesce(t.code, ''), e.qty_canonical, e.kind, "
                    "e.reference, CASE WHEN e.occurred_at > now() - interval '1 day' THEN NULL "
                    "ELSE e.occurred_at END, e.recorded_by FROM S.inventory_ledger e "
                    "JOIN S.inventory_items i ON i.id = e.item_id "
                    "JOIN S.inventory_locations c ON c.id = e.location_id "
                    "LEFT JOIN S.inventory_lots t ON t.id = e.lot_id"
                )
            ),
            "items": rows("SELECT sku, name, unit, is_active FROM S.inventory_items ORDER BY 1"),
            "locations": rows(
                "SELECT code, name, site, is_active FROM S.inventory_locations ORDER BY 1"
            ),
            "lots": rows(
                "SELECT i.sku, l.code, l.expires_on FROM S.inventory_lots l "
                "JOIN S.inventory_items i ON i.id = l.item_id ORDER BY 1, 2"
            ),
            "balances": rows(
                "SELECT i.sku, c.code, coalesce(t.code, ''), b.qty_canonical "
                "FROM S.inventory_balances b JOIN S.inventory_items i ON i.id = b.item_id "
                "JOIN S.inventory_locations c ON c.id = b.location_id "
                "LEFT JOIN S.inventory_lots t ON t.id = b.lot_id ORDER BY 1, 2, 3"
            ),
            "postings": rows("SELECT entry_count, recorded_by FROM S.inventory_postings"),
        }


@pytest.mark.django_db
@override_settings(IMPORT_BULK_MIN_ROWS=50)
def test_the_direct_path_writes_what_the_staged_path_writes(acme, globex, tmp_path, monkeypatch):
    monkeypatch.setattr(importer_direct, "BATCH_ROWS", 37)  # new codes in many batches
    path = write(tmp_path, rich_rows())
    definition = ledger_definition("acme")
    started = timezone.now()
    with schema_context("acme"):
        direct = ledger_import_csv(path=path, source="ledger.csv")
    with schema_context("globex"):
        staged = ledger_import_csv(path=path, source="ledger.csv", online=True)
    assert "direct" in direct.steps and "stage" not in direct.steps
    assert "stage" in staged.steps and "direct" not in staged.steps
    assert direct.mode == "bulk" and staged.mode == "online"
    a, b = everything("acme"), everything("globex")
    assert a == b
    assert len(a["ledger"]) == direct.rows == staged.rows == 242
    assert a["postings"] == [(242, "import:ledger.csv")]
    assert (direct.items_created, direct.locations_created, direct.lots_created) == (
        staged.items_created,
        staged.locations_created,
        staged.lots_created,
    )
    assert direct.items_created == 44 and direct.lots_created > 0
    assert ("SKU-0", "Item 0", "g", True) in a["items"]
    assert ("WH-5", "Store 5", "Site 1", True) in a["locations"]
    references = [r[5] for r in a["ledger"]]
    assert "tab\there-1" in references and "back\\slash \\N-2" in references
    with connection.cursor() as cursor:
        # Ids in the file's order; the rows with no occurred_at got the import's time.
        cursor.execute("SELECT reference, occurred_at FROM acme.inventory_ledger ORDER BY id")
        written = cursor.fetchall()
    assert [r for r, _ in written[:3]] == ["plain-0", "tab\there-1", "back\\slash \\N-2"]
    # Rows r % 7 == 6 and the short row have no occurred_at: the import's time.
    now = timezone.now()
    assert sum(started <= at <= now for _, at in written) == len(range(6, 240, 7)) + 1
    assert balance_mismatches("acme") == []
    assert ledger_definition("acme") == definition  # the bulk load's rebuild


# Each file the direct path must hand to the staged path: (rows appended to a good file,
# what the staged path answers: "imports" or the ValidationFailed fields it names).
GOOD = [f"SKU-{r % 5},,ea,WH-{r % 3},,,,,{r % 7 + 1},receipt,r{r},\n" for r in range(120)]
HANDED_OVER = {
    "a bad quantity on the last line": (["SKU-1,,,WH-1,,,,,1.2.3,receipt,x,\n"], ["line 122"]),
    "a date-only occurred_at (Python reads it)": (
        ["SKU-1,,,WH-1,,,,,1,receipt,x,2025-01-05\n"],
        "imports",
    ),
    "an item given another unit": (["SKU-1,,g,WH-1,,,,,1,receipt,x,\n"], ["line 122"]),
    "a new item with no unit on its first line": (
        ["NEW-1,,,WH-1,,,,,1,receipt,x,\n", "NEW-1,,ea,WH-1,,,,,1,receipt,y,\n"],
        ["line 122"],
    ),
    "a new location with a bad code": (["SKU-1,,,WH 9,,,,,1,receipt,x,\n"], ["line 122"]),
    "a new lot with a bad code": (["SKU-1,,,WH-1,,,L 1,,1,receipt,x,\n"], ["line 122"]),
    "a lot expiry on the 30th of February": (
        ["SKU-1,,,WH-1,,,L-1,2027-02-30,1,receipt,x,\n"],
        ["line 122"],
    ),
    "too many values": (["SKU-1,,,WH-1,,,,,1,receipt,x,,more\n"], ["line 122"]),
    "an occurred_at at 24:00": (["SKU-1,,,WH-1,,,,,1,receipt,x,2025-01-01T24:00:00Z\n"], None),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(HANDED_OVER))
@override_settings(IMPORT_BULK_MIN_ROWS=50)
def test_a_file_the_direct_path_is_not_sure_of_gets_the_staged_answer(
    acme, globex, tmp_path, case, monkeypatch
):
    monkeypatch.setattr(importer_direct, "WRITE_ROWS", 10)  # the doubt comes mid-COPY
    extra, expected = HANDED_OVER[case]
    path = write(tmp_path, GOOD + extra)
    answers = {}
    for schema, online in (("acme", False), ("globex", True)):
        before = ledger_definition(schema)
        with schema_context(schema):
            try:
                result = ledger_import_csv(path=path, online=online)
                answers[schema] = ("imported", result.rows, sorted(result.steps))
            except ValidationFailed as err:
                answers[schema] = ("refused", err.message, err.fields)
        if answers[schema][0] == "refused":
            # Nothing of either try is left: no rows, codes, posting; the ledger intact.
            for table in ("inventory_ledger", "inventory_items", "inventory_postings"):
                assert count_rows(schema, table) == 0
            assert ledger_definition(schema) == before
    if expected == "imports":
        assert answers["acme"][:2] == answers["globex"][:2] == ("imported", 121)
        assert "stage" in answers["acme"][2] and "direct" not in answers["acme"][2]
        assert everything("acme")["ledger"] == everything("globex")["ledger"]
    elif expected is None:  # whatever the staged path says, the same
        assert answers["acme"][:2] == answers["globex"][:2]
    else:
        assert answers["acme"] == answers["globex"]
        assert answers["acme"][0] == "refused"
        assert [p.split(",")[0] for p in answers["acme"][2]] == expected


@pytest.mark.django_db
@override_settings(IMPORT_BULK_MIN_ROWS=50)
def test_with_the_no_negative_policy_on_the_file_is_judged_whole_by_the_staged_path(
    acme, tmp_path, monkeypatch
):
    """The policy judges each statement; the direct path would write one COPY per batch that
    brings new codes, so a key negative at a batch's end but not at the file's would be
    refused. The staged path's one INSERT is judged whole: the file goes in."""
    monkeypatch.setattr(importer_direct, "BATCH_ROWS", 10)
    rows = ["A-1,,ea,WH-1,,,,,-5,issue,first,\n"]  # negative until the receipt below
    rows += [f"B-{r},,ea,WH-1,,,,,1,receipt,r{r},\n" for r in range(60)]
    rows += ["A-1,,,WH-1,,,,,10,receipt,last,\n"]
    with schema_context("acme"):
        policy_set(no_negative_stock=True)
        result = ledger_import_csv(path=write(tmp_path, rows))
    assert "stage" in result.steps and result.rows == 62
    assert balance_mismatches("acme") == []
    # And a file that does end negative is refused whole, nothing written.
    negative = ["A-1,,,WH-1,,,,,-50,issue,neg,\n"] + rows[1:-1]
    with schema_context("acme"), pytest.raises(InsufficientStock):
        ledger_import_csv(path=write(tmp_path, negative, "neg.csv"))
    assert count_rows("acme", "inventory_ledger") == 62


def test_a_policy_being_changed_sends_the_file_the_staged_way_without_waiting(committed, tmp_path):
    """The direct path locks the policy row FOR SHARE (it must stay off while the file goes in
    one COPY statement at a time), but never waits for it while holding the bulk load's locks:
    a policy change in progress sends the file the staged way, which reads the policy as any
    posting does."""
    holder = committed.connect("acme")
    holder.execute("SELECT no_negative_stock FROM inventory_settings WHERE id FOR UPDATE")
    try:
        started = time.monotonic()
        with override_settings(IMPORT_BULK_MIN_ROWS=50), schema_context("acme"):
            result = ledger_import_csv(path=write(tmp_path, GOOD))
        assert time.monotonic() - started < 10
        assert "stage" in result.steps and "direct" not in result.steps
        assert (result.mode, result.rows) == ("bulk", 120)
    finally:
        holder.rollback()
        holder.close()
    assert count_rows("acme", "inventory_ledger") == 120
    assert balance_mismatches("acme") == []


@pytest.mark.django_db
def test_the_python_sieve_lets_through_what_the_sql_sieve_lets_through():
    """time_sure, expiry_sure and the quantity shape against importer_sql's expressions run by
    PostgreSQL, on edge cases and on random strings of the characters that matter."""
    rng = random.Random(18)
    stamps = [
        "2024-02-29T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2100-02-29T00:00:00Z",
        "2000-02-29 12:00:00",
        "1899-12-31T23:59:59Z",
        "2200-01-01T00:00:00Z",
        "2025-04-31T00:00:00Z",
        "2025-12-31T23:59:59+15:59",
        "2025-12-31T23:59:59+16:00",
        "2025-01-01T24:00:00Z",
        "2025-01-01T00:60:00Z",
        "2025-01-01T00:00:60Z",
        "2025-01-01t00:00:00Z",
        "2025-01-01T00:00:00z",
        "2025-01-01T00:00:00.5Z",
        "2025-01-01",
        "2025-W01-1",
        "２０２５-01-01T00:00:00Z",
        "2025-1-01T00:00:00Z",
        "2025-01-01T00:00:00+0100",
        "2025-00-10T00:00:00Z",
        "2025-13-10T00:00:00Z",
        "2025-01-00T00:00:00Z",
        "2025-01-32T00:00:00Z",
        "2025-06-30 00:00:00-00:00",
    ]
    alphabet = "0123456789--::TZ +"
    for _ in range(3000):
        base = list(rng.choice(stamps[:1] + stamps[7:8]))
        for _ in range(rng.randint(1, 3)):
            base[rng.randrange(len(base))] = rng.choice(alphabet)
        stamps.append("".join(base))
    dates = [s[:10] for s in stamps] + ["2027-02-28", "2028-02-29", "2027-02-29", "27-02-28"]
    qtys = [
        "0",
        "-0",
        "0.0",
        "00.000000",
        "1",
        "-1",
        "1.",
        ".5",
        "1.1234567",
        "1.123456",
        "999999999999",
        "9999999999999",
        "-999999999999.999999",
        "+1",
        "1e3",
        "١",
        " 1",
        "1,5",
        "--1",
        "0.000001",
        "-",
        "-.",
        "",
    ]
    qtys += [
        "".join(rng.choice("0123456789.-") for _ in range(rng.randint(1, 16))) for _ in range(3000)
    ]
    with connection.cursor() as cursor:
        for naive_is_utc in (True, False):
            cursor.execute(
                f"SELECT NOT {sql._TIME_ODD} FROM unnest(%(v)s::text[]) AS s (occurred_at)",
                {"v": stamps, "time_shapes": sql.time_shapes(naive_is_utc)},
            )
            in_sql = [ok for (ok,) in cursor.fetchall()]
            in_python = [importer_direct.time_sure(v, naive_is_utc) for v in stamps]
            assert [v for v, a, b in zip(stamps, in_sql, in_python, strict=True) if a != b] == []
            assert 50 < sum(in_python) < len(stamps) - 50  # both kinds well represented
        cursor.execute(
            f"SELECT NOT {sql._EXPIRY_ODD} FROM unnest(%s::text[], "
            "array_fill('L'::text, ARRAY[%s])) AS s (lot_expires_on, lot)",
            [dates, len(dates)],
        )
        in_sql = [ok for (ok,) in cursor.fetchall()]
        assert [
            d for d, ok in zip(dates, in_sql, strict=True) if ok != importer_direct.expiry_sure(d)
        ] == []
        cursor.execute(
            "SELECT translate(qty, '0123456789', '9999999999') = ANY(%s) "
            "AND translate(qty, '0.-', '') <> '' FROM unnest(%s::text[]) AS s (qty)",
            [sql.QTY_SHAPES, qtys],
        )
        in_sql = [ok for (ok,) in cursor.fetchall()]
    in_python = [importer_direct.qty_sure(q) for q in qtys]
    assert [q for q, a, b in zip(qtys, in_sql, in_python, strict=True) if a != b] == []
    assert sum(in_python) > 100


@pytest.mark.django_db
def test_codes_look_like_the_sql_pattern():
    codes = ["A", "a-1", "A_B", "A/B.c-d", "-A", ".A", "A B", "Ä", "A" * 64, "A" * 65, "A\n", ""]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT v ~ '{sql.CODE_RE}' FROM unnest(%s::text[]) AS v", [codes])
        in_sql = [ok for (ok,) in cursor.fetchall()]
    in_python = [importer_direct._CODE.fullmatch(c) is not None for c in codes]
    assert in_sql == in_python
    assert list(itertools.compress(codes, in_python)) == ["A", "a-1", "A_B", "A/B.c-d", "A" * 64]
