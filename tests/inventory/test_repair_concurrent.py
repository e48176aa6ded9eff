"""The repair while other sessions keep posting: the balances end exactly equal to the ledger.
Commits for real (no django_db mark: the writers' sessions must see the catalog); the `committed`
fixture empties the tenant tables afterwards."""

from __future__ import annotations

from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from inventory.services.validation import balance_objects_by_schema, migration_validate
from tests.inventory.helpers import (
    balance_mismatches,
    count_rows,
    make_catalog,
    random_keys,
)
from tests.inventory.test_repair import GUIDE_ROLLBACK


def test_the_repair_is_exact_while_other_sessions_keep_posting(committed, background_writers):
    """Postings land before the repair (no trigger), during it and after it: the balances end
    exactly equal to the ledger."""
    with schema_context("acme"):
        items, locations, lots = make_catalog(items=30, locations=3, lots_per_item=1, prefix="CW")
    keys = random_keys(items, locations, lots, 400, seed=5)
    writers = background_writers("acme", keys, threads=2, max_rows=5)
    try:
        writers.wait_for(200)
        with committed.connect("acme", autocommit=True) as conn:
            conn.execute(GUIDE_ROLLBACK)  # by hand, while the writers go on
        writers.wait_for(writers.written + 200)  # postings with no trigger and no table
        call_command("repair_balances", "--schema", "acme")
        writers.wait_for(writers.written + 200)  # postings through the restored trigger
    finally:
        writers.stop()
        connection.set_schema_to_public()
        if not balance_objects_by_schema(["acme"])["acme"].present:
            from inventory.services.repair import balance_objects_restore

            with schema_context("acme"):
                balance_objects_restore()
    assert not writers.errors, writers.errors
    assert count_rows("acme", "inventory_ledger") == writers.written >= 600
    assert balance_mismatches("acme") == []
    assert migration_validate(schema="acme").ok
