"""Reconciliation runs: what they find, what they correct, what they queue, and for whom."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from reconciliation.models import Discrepancy, ReconciliationRun
from reconciliation.services import (
    ReconciliationBusy,
    ResolutionError,
    discrepancy_approve,
    discrepancy_dismiss,
    reconciliation_run,
)
from tests.factories import make_user
from tests.inventory.helpers import balance_mismatches, make_catalog

pytestmark = pytest.mark.django_db


def post(item, location, qty, lot=None, cursor=None):
    sql = (
        "INSERT INTO inventory_ledger (item_id, location_id, lot_id, qty_canonical, kind, reference, occurred_at, "
        "recorded_at, recorded_by) VALUES (%s, %s, %s, %s, 'adjustment', '', now(), now(), '')"
    )
    if cursor is not None:
        cursor.execute(sql, [item.id, location.id, lot.id if lot else None, qty])
        return
    with connection.cursor() as cur:
        cur.execute(sql, [item.id, location.id, lot.id if lot else None, qty])


def skew(item, location, by, lot=None):
    """Make a balance wrong by `by` (balances are not append-only; the ledger is)."""
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE inventory_balances SET qty_canonical = qty_canonical + %s "
            "WHERE item_id = %s AND location_id = %s AND lot_key = %s",
            [by, item.id, location.id, lot.id if lot else 0],
        )


def balance(item, location, lot=None):
    with connection.cursor() as cur:
        cur.execute(
            "SELECT qty_canonical FROM inventory_balances WHERE item_id = %s AND location_id = %s AND lot_key = %s",
            [item.id, location.id, lot.id if lot else 0],
        )
        row = cur.fetchone()
    return row[0] if row else None


@pytest.fixture
def setup(in_acme):
    items, locations, lots = make_catalog(items=4, locations=2, lots_per_item=1)
    for item in items:
        post(item, locations[0], "100")
    return items, locations, lots


def test_it_finds_a_difference_injected_under_the_trigger(setup):
    items, locations, _ = setup
    with connection.cursor() as cur:
        cur.execute(
            "SET CONSTRAINTS ALL IMMEDIATE"
        )  # ALTER TABLE refuses pending deferred FK checks
        cur.execute("ALTER TABLE inventory_ledger DISABLE TRIGGER inventory_ledger_balance_trigger")
        post(items[0], locations[0], "5", cursor=cur)
        cur.execute("ALTER TABLE inventory_ledger ENABLE TRIGGER inventory_ledger_balance_trigger")
    run = reconciliation_run(mode="full")
    assert (run.keys_checked, run.differences_found, run.opened, run.auto_corrected) == (4, 1, 1, 0)
    d = Discrepancy.objects.get(run=run)
    assert (d.kind, d.status, d.ledger_sum, d.balance, d.difference) == (
        "mismatch",
        "open",
        Decimal("105"),
        Decimal("100"),
        Decimal("5"),
    )
    assert d.sku == items[0].sku and d.location_code == locations[0].code
    assert balance(items[0], locations[0]) == Decimal("100")  # left alone for review


def test_just_under_the_tolerance_is_auto_corrected_and_at_it_is_opened(setup):
    items, locations, _ = setup
    skew(items[0], locations[0], Decimal("0.009999"))
    skew(items[1], locations[0], Decimal("-0.01"))
    run = reconciliation_run(mode="full")
    assert (run.differences_found, run.auto_corrected, run.opened) == (2, 1, 1)
    auto = Discrepancy.objects.get(status="auto_corrected")
    assert auto.item_id == items[0].id and auto.difference == Decimal("-0.009999")
    assert balance(items[0], locations[0]) == Decimal("100")  # corrected
    opened = Discrepancy.objects.get(status="open")
    assert opened.item_id == items[1].id and opened.difference == Decimal("0.01")
    assert balance(items[1], locations[0]) == Decimal("99.99")  # untouched


def test_it_uses_the_configured_tolerance(setup, settings):
    items, locations, _ = setup
    settings.RECONCILIATION_TOLERANCE = "1"
    skew(items[0], locations[0], Decimal("0.5"))
    assert reconciliation_run(mode="full").auto_corrected == 1


def test_it_finds_missing_and_orphan_balance_rows(setup):
    items, locations, lots = setup
    with connection.cursor() as cur:
        cur.execute("DELETE FROM inventory_balances WHERE item_id = %s", [items[0].id])
        cur.execute(
            "INSERT INTO inventory_balances (item_id, location_id, lot_id, qty_canonical) VALUES (%s, %s, %s, 7)",
            [items[1].id, locations[1].id, lots[1].id],
        )
    run = reconciliation_run(mode="full")
    kinds = {d.kind: d for d in Discrepancy.objects.filter(run=run)}
    assert set(kinds) == {"missing_balance", "orphan_balance"}
    assert kinds["missing_balance"].balance is None and kinds[
        "missing_balance"
    ].ledger_sum == Decimal("100")
    assert kinds["orphan_balance"].ledger_sum == 0 and kinds[
        "orphan_balance"
    ].difference == Decimal("-7")
    assert kinds["orphan_balance"].lot_code == lots[1].code


def test_a_second_run_updates_the_open_discrepancy_instead_of_adding_one(setup):
    items, locations, _ = setup
    skew(items[0], locations[0], Decimal("3"))
    first = reconciliation_run(mode="full")
    skew(items[0], locations[0], Decimal("1"))
    second = reconciliation_run(mode="full")
    [d] = Discrepancy.objects.filter(status="open")
    assert (
        d.run_id == first.id and d.last_seen_run_id == second.id and d.difference == Decimal("-4")
    )


def test_a_dry_run_changes_nothing(setup):
    items, locations, _ = setup
    skew(items[0], locations[0], Decimal("0.001"))
    skew(items[1], locations[0], Decimal("2"))
    run = reconciliation_run(mode="full", dry_run=True)
    assert (run.auto_corrected, run.opened, run.dry_run) == (1, 1, True)
    assert Discrepancy.objects.count() == 0
    assert len(balance_mismatches("acme")) == 2


def test_approve_sets_the_balance_to_the_ledger_sum_as_it_is_then(setup):
    items, locations, _ = setup
    skew(items[0], locations[0], Decimal("-20"))
    reconciliation_run(mode="full")
    d = Discrepancy.objects.get(status="open")
    post(items[0], locations[0], "1")  # the ledger moves on before review
    support = make_user("sam")
    d = discrepancy_approve(discrepancy_id=d.id, user=support, note="count confirmed")
    assert d.status == "approved" and d.resolved_by == support and d.note == "count confirmed"
    assert (d.balance_before, d.balance_after) == (Decimal("81"), Decimal("101"))
    assert balance(items[0], locations[0]) == Decimal("101")
    assert balance_mismatches("acme") == []
    with pytest.raises(ResolutionError, match="already approved"):
        discrepancy_approve(discrepancy_id=d.id, user=support)


def test_a_discrepancy_that_vanished_is_closed_not_corrected_twice(setup):
    items, locations, _ = setup
    skew(items[0], locations[0], Decimal("5"))
    reconciliation_run(mode="full")
    d = Discrepancy.objects.get(status="open")
    skew(items[0], locations[0], Decimal("-5"))  # fixed by other means meanwhile
    d = discrepancy_approve(discrepancy_id=d.id, user=make_user("sam"))
    assert d.status == "vanished" and d.balance_before == d.balance_after == Decimal("100")
    assert balance(items[0], locations[0]) == Decimal("100")


def test_approve_recreates_a_missing_balance_row(setup):
    items, locations, _ = setup
    with connection.cursor() as cur:
        cur.execute("DELETE FROM inventory_balances WHERE item_id = %s", [items[2].id])
    reconciliation_run(mode="full")
    d = discrepancy_approve(
        discrepancy_id=Discrepancy.objects.get(status="open").id, user=make_user("sam")
    )
    assert d.status == "approved" and balance(items[2], locations[0]) == Decimal("100")


def test_dismiss_needs_a_reason_and_changes_no_balance(setup):
    items, locations, _ = setup
    skew(items[0], locations[0], Decimal("9"))
    reconciliation_run(mode="full")
    d = Discrepancy.objects.get(status="open")
    with pytest.raises(ResolutionError, match="reason is required"):
        discrepancy_dismiss(discrepancy_id=d.id, user=make_user("sam"), reason="  ")
    d = discrepancy_dismiss(
        discrepancy_id=d.id, user=make_user("kim"), reason="known scanner fault"
    )
    assert d.status == "dismissed" and d.note == "known scanner fault"
    assert balance(items[0], locations[0]) == Decimal("109")


def test_a_tenants_run_never_touches_another_tenant(setup, globex):
    items, locations, _ = setup
    skew(items[0], locations[0], Decimal("0.001"))
    with schema_context("globex"):
        g_items, g_locations, _ = make_catalog(prefix="G")
        post(g_items[0], g_locations[0], "10")
        skew(g_items[0], g_locations[0], Decimal("0.002"))
    run = reconciliation_run(mode="full")
    assert run.organization.slug == "acme"
    assert not Discrepancy.objects.filter(organization=globex).exists()
    assert balance_mismatches("globex") != []  # still skewed: nobody reconciled globex
    with schema_context("globex"):
        assert reconciliation_run(mode="full").auto_corrected == 1
    assert balance_mismatches("globex") == []


def test_the_first_incremental_run_is_a_full_one(setup):
    items, locations, _ = setup
    skew(items[3], locations[0], Decimal("6"))
    run = reconciliation_run(mode="incremental")
    assert run.since_xid is None and run.keys_checked == 4 and run.opened == 1


def test_a_second_run_at_the_same_time_is_refused(setup, committed):
    with committed.connect("acme", autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtext('reconcile:acme'))")
        with pytest.raises(ReconciliationBusy):
            reconciliation_run(mode="full")


def test_the_command_prints_figures_per_tenant(setup, capsys):
    items, locations, _ = setup
    skew(items[0], locations[0], Decimal("0.004"))
    call_command("reconcile_balances", "--schema", "acme", "--full")
    out = capsys.readouterr().out
    assert "acme: full: 4 keys checked, 1 differences, 1 auto-corrected, 0 opened" in out
    assert ReconciliationRun.objects.get().status == "succeeded"
