"""The balance CSV export (issue 18.3): PostgreSQL's COPY writes the same bytes as the Python
export did, for every filter and sort, at >= 50,000 rows/s; a view over EXPORT_STREAM_MAX_ROWS
is a background job whose file the organisation's owners download whole (Content-Length,
SHA-256), and nobody else; a run that did not succeed serves nothing; old files are swept."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from inventory.forms import SORTS, BalanceQuery
from inventory.services.balance_export import (
    HEADER_LINE,
    balance_export_blocks,
    balance_export_file,
    export_dir,
    exports_sweep,
)
from operations.models import JobRun
from operations.registry import job_run_registered
from tests.inventory.export_helpers import many_balances, python_export
from tests.page_helpers import assert_login_redirect, post, text

pytestmark = pytest.mark.django_db

NASTY = [
    'Comma, and "quotes"',
    "Line\nbreak",
    "Windows\r\nbreak",
    "  spaces  ",
    "back\\slash \\. and \\N",
    "Ünïcødé ✓ 🧪",
    "=1+1",
    "+SUM(A1)",
    "-2",
    "@cmd",
    "\tTab first",
    "\rCR first",
    "'already quoted",
    "",
]


def _sku(n: int, name: str) -> str:
    return (name[:1] if name[:1] in "=+-@" else "") + f"N{n:02d}"


@pytest.fixture
def nasty(acme):
    """Balances whose text and figures exercise every quoting and formatting rule: formula
    starts, quotes, commas, line breaks, empty names, no lot and lots, zero, negative, tiny and
    38-digit quantities, timestamps with and without microseconds."""
    from inventory.models import Item, Location, Lot

    with schema_context("acme"):
        items = [
            Item.objects.create(sku=_sku(n, name), name=name, unit="g")
            for n, name in enumerate(NASTY)
        ]
        Location.objects.create(code="=LOC", name="formula")
        Location.objects.create(code="A,B", name="comma")
        Lot.objects.create(item=items[0], code="-LOT")
        Lot.objects.create(item=items[1], code='q"uote')
    entries = [
        {"item": i.sku, "location": loc, "qty": qty, "kind": "adjustment"}
        for i, qty in zip(items, ["5", "-3.25", "0.000001", "-0.000001"] * 4, strict=False)
        for loc in ("=LOC", "A,B")
    ]
    entries += [
        {"item": items[0].sku, "location": "=LOC", "lot": "-LOT", "qty": "7", "kind": "receipt"},
        {"item": items[1].sku, "location": "A,B", "lot": 'q"uote', "qty": "2", "kind": "receipt"},
        {"item": items[1].sku, "location": "A,B", "lot": 'q"uote', "qty": "-2", "kind": "issue"},
    ]
    post("acme", entries)
    with schema_context("acme"), connection.cursor() as cur:
        # A balance beyond Python's default 28 digits, and whole-second timestamps (isoformat()
        # then writes no microseconds).
        cur.execute(
            "UPDATE inventory_balances SET qty_canonical = 12345678901234567890123456789.123456 "
            "WHERE id = (SELECT min(id) FROM inventory_balances)"
        )
        cur.execute(
            "UPDATE inventory_balances SET updated_at = date_trunc('second', updated_at) "
            "WHERE id % 2 = 0"
        )
    return items


def export_bytes(query: BalanceQuery) -> bytes:
    with schema_context("acme"):
        return b"".join(balance_export_blocks(query))


QUERIES = [BalanceQuery(sort=sort) for sort in SORTS] + [
    BalanceQuery(q="n0"),
    BalanceQuery(location="A,B", sign="negative"),
    BalanceQuery(sign="zero"),
    BalanceQuery(lot="none", sign="negative"),
    BalanceQuery(lot="-LOT"),
    BalanceQuery(sign="positive", sort="-qty"),
    BalanceQuery(q="%_"),  # LIKE wildcards are text here, as for the page
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.as_params() or "all")
def test_it_writes_the_bytes_the_python_export_wrote(query, nasty):
    with schema_context("acme"):
        expected = python_export(query)
    assert export_bytes(query) == expected
    assert expected.count(b"\r\n") > 1 or query.q == "%_"


def test_it_writes_the_bytes_of_the_python_export_as_of_an_instant(nasty):
    from inventory.models import LedgerEntry

    with schema_context("acme"):
        middle = LedgerEntry.objects.order_by("id")[len(NASTY)].occurred_at
    query = BalanceQuery(as_of=middle, sort="-qty")
    with schema_context("acme"):
        expected = python_export(query)
    assert export_bytes(query) == expected
    assert 1 < expected.count(b"\r\n") < export_bytes(BalanceQuery()).count(b"\r\n")


def test_it_writes_the_bytes_of_the_python_export_for_random_text(acme):
    """300 names and codes drawn from the characters CSV quoting and formula rules care about."""
    import random

    from inventory.models import Item, Location

    rng = random.Random(18)
    alphabet = list(",\"'\r\n\t =+-@\\.;|") + ["é", "✓", "🧪", "a", "Z", "0"]
    with schema_context("acme"):
        items = Item.objects.bulk_create(
            [
                Item(
                    sku=f"R{n:03d}",
                    unit="ea",
                    name="".join(rng.choices(alphabet, k=rng.randint(0, 8))),
                )
                for n in range(300)
            ]
        )
        codes = {"".join(rng.choices(alphabet, k=rng.randint(1, 6))).strip() for _ in range(40)}
        codes = sorted(c for c in codes if c)
        Location.objects.bulk_create([Location(code=c, name="x") for c in codes])
    post(
        "acme",
        [
            {"item": i.sku, "location": rng.choice(codes), "qty": str(rng.randint(-9, 9) or 1)}
            | {"kind": "adjustment"}
            for i in items
        ],
    )
    for query in (BalanceQuery(), BalanceQuery(sort="location"), BalanceQuery(q="=")):
        with schema_context("acme"):
            expected = python_export(query)
        assert export_bytes(query) == expected


def test_it_exports_under_the_debug_cursor_too(nasty):
    """DEBUG=true (make run) wraps cursors; its copy() takes no parameters."""
    from django.test.utils import CaptureQueriesContext

    query = BalanceQuery(q="n0", as_of=timezone.now())
    with schema_context("acme"):
        expected = python_export(query)
    with CaptureQueriesContext(connection):
        assert export_bytes(query) == expected


def test_it_neutralises_formulas_in_sql(nasty):
    body = export_bytes(BalanceQuery(sort="item")).decode()
    assert '"\'\r=1+1"' not in body  # not a cell of ours: the CR first name is quoted whole
    assert ",'=1+1," in body and ",'+SUM(A1)," in body and ",'@cmd," in body
    assert ",'=LOC," in body and ",'-LOT," in body and '"\'\tTab first"' not in body
    assert ",-3.250000," in body and ",'-3" not in body  # quantities stay numbers


def test_an_empty_view_is_the_header_alone(acme):
    assert (
        export_bytes(BalanceQuery())
        == HEADER_LINE
        == b"sku,item,unit,location,lot,qty,updated_at\r\n"
    )


def test_it_exports_200000_rows_at_50000_rows_per_second_or_more(acme, capsys):
    rows = many_balances("acme", items=2000, locations=100)
    assert rows == 200_000
    with schema_context("acme"), connection.cursor() as cur:
        cur.execute("ANALYZE inventory_balances")
    started = time.perf_counter()
    lines = size = 0
    for block in _blocks():
        lines += block.count(b"\r\n")
        size += len(block)
    seconds = time.perf_counter() - started
    assert lines == rows + 1
    rate = rows / seconds
    with capsys.disabled():
        print(
            f"\nCOPY export: {rows} rows, {size / 1e6:.1f} MB in {seconds:.2f} s = {rate:,.0f} rows/s"
        )
    assert rate >= 50_000, f"{rate:,.0f} rows/s"


def _blocks():
    with schema_context("acme"):
        yield from balance_export_blocks(BalanceQuery())


# --- the page: stream below the threshold, job above it ---------------------------------------------


@pytest.fixture
def four(acme, settings, tmp_path):
    """Four balance rows in acme, a threshold of three and a private export folder."""
    settings.EXPORT_DIR = tmp_path / "exports"
    settings.EXPORT_STREAM_MAX_ROWS = 3
    with schema_context("acme"):
        from tests.factories import make_catalog

        items, locations, _ = make_catalog(items=2, locations=2, lots_per_item=0, prefix="E")
    post(
        "acme",
        [
            {"item": i.sku, "location": loc.code, "qty": "1.5", "kind": "receipt"}
            for i in items
            for loc in locations
        ],
    )
    return items


def _start(client, query: str = "") -> JobRun:
    response = client.post(f"/orgs/acme/exports/{'?' + query if query else ''}")
    assert response.status_code == 303, response.content[:300]
    job = JobRun.objects.get(kind="export")
    assert response["Location"] == f"/orgs/acme/exports/{job.id}/"
    return job


def test_a_view_over_the_threshold_is_not_streamed(as_acme_owner, four):
    response = as_acme_owner.get("/orgs/acme/balances.csv")
    assert response.status_code == 409
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert "Content-Disposition" not in response
    assert response.content.decode().startswith("This view has 4 rows, more than the 3 ")
    assert not JobRun.objects.exists()  # a GET starts nothing
    # At the threshold it streams.
    assert as_acme_owner.get("/orgs/acme/balances.csv?q=E-0000").status_code == 200


def test_the_balances_page_offers_the_background_export_over_the_threshold(as_acme_owner, four):
    html = text(as_acme_owner.get("/orgs/acme/balances/?sort=-qty"))
    assert 'action="/orgs/acme/exports/?sort=-qty"' in html and 'id="export-csv"' in html
    assert 'href="/orgs/acme/balances.csv' not in html
    small = text(as_acme_owner.get("/orgs/acme/balances/?q=E-0001"))
    assert 'href="/orgs/acme/balances.csv?q=E-0001&amp;sort=item" id="export-csv"' in small
    assert "/orgs/acme/exports/" not in small


def test_the_background_export_downloads_the_bytes_of_the_stream(as_acme_owner, four, settings):
    job = _start(as_acme_owner, "sort=-qty&location=E-LOC-1")
    assert job.status == "queued" and job.params == {"query": "location=E-LOC-1&sort=-qty"}
    assert job.requested_by == "user:acme-owner"
    queued = as_acme_owner.get(f"/orgs/acme/exports/{job.id}/")
    assert queued.status_code == 200 and 'data-status="queued"' in text(queued)
    assert as_acme_owner.get(f"/orgs/acme/exports/{job.id}/download/").status_code == 409

    run = job_run_registered(job.id)  # what the worker's task does
    assert run.status == "succeeded", run.error
    assert run.result["rows"] == 2 and run.message.startswith("2 rows, ")
    status = as_acme_owner.get(f"/orgs/acme/exports/{job.id}/", HTTP_HX_REQUEST="true")
    assert status.status_code == 200 and status["HX-Trigger"] == "job-finished"
    assert f'href="/orgs/acme/exports/{job.id}/download/"' in text(status)
    assert "hx-get" not in text(status)

    download = as_acme_owner.get(f"/orgs/acme/exports/{job.id}/download/")
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    assert download["Content-Length"] == str(len(body)) == str(run.result["bytes"])
    assert download["Content-Disposition"] == 'attachment; filename="acme-balances.csv"'
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    sha = hashlib.sha256(body).digest()
    assert download["Repr-Digest"] == f"sha-256=:{base64.b64encode(sha).decode()}:"
    assert sha.hex() == run.result["sha256"]
    # The same bytes as the stream of the same filters.
    settings.EXPORT_STREAM_MAX_ROWS = 50_000
    streamed = as_acme_owner.get("/orgs/acme/balances.csv?location=E-LOC-1&sort=-qty")
    assert streamed.status_code == 200 and "Content-Length" not in streamed
    assert b"".join(streamed.streaming_content) == body
    assert sorted(p.name for p in export_dir("acme").iterdir()) == [run.result["file"]]


def test_the_balances_page_shows_the_last_export_with_its_download(as_acme_owner, four):
    job = _start(as_acme_owner)
    job_run_registered(job.id)
    html = text(as_acme_owner.get("/orgs/acme/balances/"))
    assert f'id="export-{job.id}"' in html and 'data-status="succeeded"' in html
    assert f'href="/orgs/acme/exports/{job.id}/download/"' in html


def test_htmx_gets_the_queued_run_in_place(as_acme_owner, four):
    response = as_acme_owner.post("/orgs/acme/exports/", HTTP_HX_REQUEST="true")
    assert response.status_code == 202
    job = JobRun.objects.get(kind="export")
    html = text(response)
    assert f'hx-get="/orgs/acme/exports/{job.id}/"' in html and "<html" not in html


def test_a_second_export_while_one_is_queued_is_refused(as_acme_owner, four):
    job = _start(as_acme_owner)
    again = as_acme_owner.post("/orgs/acme/exports/?sort=-qty")
    assert again.status_code == 409
    assert f'id="export-{job.id}"' in text(again) and "already queued" in text(again)
    assert JobRun.objects.filter(kind="export").count() == 1


@pytest.mark.parametrize("query", ["sign=imaginary", "location=" + "L" * 65, "sort=password"])
def test_a_bad_filter_starts_no_export(query, as_acme_owner, four):
    response = as_acme_owner.post(f"/orgs/acme/exports/?{query}")
    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert not JobRun.objects.exists()


def test_starting_an_export_needs_a_post(as_acme_owner, four):
    assert as_acme_owner.get("/orgs/acme/exports/").status_code == 405
    assert not JobRun.objects.exists()


# --- who may see an export ------------------------------------------------------------------------


@pytest.fixture
def finished(as_acme_owner, four) -> JobRun:
    job = _start(as_acme_owner)
    return job_run_registered(job.id)


def test_another_organisations_owner_gets_404_for_the_export(as_globex_owner, finished):
    for path in (
        f"/orgs/acme/exports/{finished.id}/",
        f"/orgs/acme/exports/{finished.id}/download/",
    ):
        assert as_globex_owner.get(path).status_code == 404
    # Nor through their own organisation's address: the run is acme's.
    for path in (
        f"/orgs/globex/exports/{finished.id}/",
        f"/orgs/globex/exports/{finished.id}/download/",
    ):
        response = as_globex_owner.get(path)
        assert response.status_code == 404 and b"E-0000" not in response.getvalue()
    assert as_globex_owner.post("/orgs/acme/exports/").status_code == 404
    assert JobRun.objects.filter(kind="export").count() == 1


def test_support_staff_and_visitors_get_no_export(as_acme_support, anon, finished):
    path = f"/orgs/acme/exports/{finished.id}/download/"
    assert as_acme_support.get(path).status_code == 403
    assert as_acme_support.post("/orgs/acme/exports/").status_code == 403
    assert_login_redirect(anon.get(path), path)


def test_a_run_of_another_kind_is_no_export(as_acme_owner, finished):
    other = JobRun.objects.create(kind="backfill", schema_name="acme", status="succeeded")
    assert as_acme_owner.get(f"/orgs/acme/exports/{other.id}/download/").status_code == 404
    assert as_acme_owner.get(f"/orgs/acme/exports/{other.id}/").status_code == 404
    assert as_acme_owner.get("/orgs/acme/exports/999999/").status_code == 404


# --- nothing served unless whole ------------------------------------------------------------------


@pytest.mark.parametrize("status", ["failed", "interrupted"])
def test_a_run_that_did_not_succeed_serves_nothing(status, as_acme_owner, finished):
    # Even with a whole file of its name on disk: only a succeeded run's record counts.
    JobRun.objects.filter(pk=finished.id).update(status=status)
    response = as_acme_owner.get(f"/orgs/acme/exports/{finished.id}/download/")
    assert response.status_code == 410
    assert (
        response.content.decode()
        == f"Export {finished.id} is {status}: it wrote no file. Start it again.\n"
    )
    page = text(as_acme_owner.get(f"/orgs/acme/exports/{finished.id}/"))
    assert "/download/" not in page and "No file was kept" in page


def test_a_file_of_another_size_than_recorded_is_not_served(as_acme_owner, finished):
    path = export_dir("acme") / finished.result["file"]
    with open(path, "r+b") as f:
        f.truncate(finished.result["bytes"] - 5)
    response = as_acme_owner.get(f"/orgs/acme/exports/{finished.id}/download/")
    assert response.status_code == 410 and "not whole" in response.content.decode()
    assert "/download/" not in text(as_acme_owner.get(f"/orgs/acme/exports/{finished.id}/"))
    path.unlink()
    assert as_acme_owner.get(f"/orgs/acme/exports/{finished.id}/download/").status_code == 410


def test_a_result_naming_a_path_outside_the_folder_serves_nothing(as_acme_owner, finished):
    result = finished.result | {"file": "../../../etc/passwd"}
    JobRun.objects.filter(pk=finished.id).update(result=result)
    assert as_acme_owner.get(f"/orgs/acme/exports/{finished.id}/download/").status_code == 410


def test_a_failed_write_leaves_no_file(acme, four, monkeypatch):
    import inventory.services.balance_export as export

    def broken(query, *, on_rows=None, conn=None):
        yield HEADER_LINE
        raise OSError("disk full")

    monkeypatch.setattr(export, "balance_export_blocks", broken)
    with schema_context("acme"), pytest.raises(OSError, match="disk full"):
        balance_export_file(schema_name="acme", query=BalanceQuery())
    assert list(export_dir("acme").iterdir()) == []


# --- the sweep ------------------------------------------------------------------------------------


def test_the_sweep_removes_old_files_dead_parts_and_unrecorded_files(settings, tmp_path):
    settings.EXPORT_DIR = tmp_path
    folder = tmp_path / "acme"
    folder.mkdir()
    now = time.time()
    names = {
        "old": "export-" + "a" * 32 + ".csv",
        "fresh": "export-" + "b" * 32 + ".csv",
        "dead_part": ".export-" + "c" * 32 + ".csv.part",
        "live_part": ".export-" + "d" * 32 + ".csv.part",
        "orphan": "export-" + "e" * 32 + ".csv",
        "new_orphan": "export-" + "f" * 32 + ".csv",
    }
    ages = {"old": 25 * 3600, "fresh": 3600, "dead_part": 1000, "live_part": 10}
    ages |= {"orphan": 1000, "new_orphan": 10}
    for key, name in names.items():
        (folder / name).write_bytes(b"x")
        os.utime(folder / name, (now - ages[key], now - ages[key]))
    kept = {names["old"], names["fresh"]}
    removed = exports_sweep(now=now, kept_names=kept)
    assert sorted(os.path.basename(p) for p in removed) == sorted(
        [names["old"], names["dead_part"], names["orphan"]]
    )
    left = {p.name for p in folder.iterdir()}
    assert left == {names["fresh"], names["live_part"], names["new_orphan"]}


def test_the_hourly_sweep_keeps_the_files_of_succeeded_runs(finished, settings):
    from inventory.jobs import export_files_sweep
    from operations.schedules import SCHEDULES

    spec = next(s for s in SCHEDULES if s.name == "remove old exports")
    assert spec.func == "inventory.jobs.export_files_sweep" and spec.minutes == 60
    path = export_dir("acme") / finished.result["file"]
    long_ago = time.time() - 2 * settings.EXPORT_PART_STALE_SECONDS
    os.utime(path, (long_ago, long_ago))
    assert export_files_sweep() == [] and path.exists()
    JobRun.objects.filter(pk=finished.id).update(status="interrupted")
    assert export_files_sweep() == [str(path)] and not path.exists()


def test_an_export_older_than_a_day_is_gone_for_its_owner(as_acme_owner, finished, settings):
    path = export_dir("acme") / finished.result["file"]
    day_ago = (
        timezone.now() - timedelta(hours=settings.EXPORT_MAX_AGE_HOURS, minutes=1)
    ).timestamp()
    os.utime(path, (day_ago, day_ago))
    from inventory.jobs import export_files_sweep

    assert export_files_sweep() == [str(path)]
    response = as_acme_owner.get(f"/orgs/acme/exports/{finished.id}/download/")
    assert response.status_code == 410 and "kept 24 h" in response.content.decode()
    assert re.search(
        r"no longer kept", text(as_acme_owner.get(f"/orgs/acme/exports/{finished.id}/"))
    )
