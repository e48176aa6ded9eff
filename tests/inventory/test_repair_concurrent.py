"""The repair while other sessions keep posting: the balances end exactly equal to the ledger.
Commits for real (no django_db mark: the writers' sessions must see the catalog); the `committed`
fixture empties the tenant tables afterwards."""

from __future__ import annotations

import random
import threading
import time

from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from inventory.services.validation import balance_objects_by_schema, migration_validate
from tests.inventory.helpers import (
    balance_mismatches,
    count_rows,
    make_catalog,
    random_keys,
    random_qty,
)
from tests.inventory.test_repair import GUIDE_ROLLBACK


def test_the_repair_is_exact_while_other_sessions_keep_posting(committed):
    """Postings land before the repair (no trigger), during it and after it: the balances end
    exactly equal to the ledger."""
    with schema_context("acme"):
        items, locations, lots = make_catalog(items=30, locations=3, lots_per_item=1, prefix="CW")
    keys = random_keys(items, locations, lots, 400, seed=5)
    stop = threading.Event()
    errors: list[BaseException] = []
    written = [0, 0]

    def writer(n: int) -> None:
        rng = random.Random(n)
        try:
            with committed.connect("acme", autocommit=True) as conn:
                while not stop.is_set():
                    rows = [(*rng.choice(keys), random_qty(rng)) for _ in range(rng.randint(1, 5))]
                    values = ", ".join(
                        ["(%s, %s, %s, %s, 'adjustment', '', now(), now(), '')"] * len(rows)
                    )
                    conn.execute(
                        "INSERT INTO inventory_ledger (item_id, location_id, lot_id, qty_canonical, "
                        "kind, reference, occurred_at, recorded_at, recorded_by) VALUES " + values,
                        [v for row in rows for v in row],
                    )
                    written[n] += len(rows)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            errors.append(err)

    def wait_for(rows: int) -> None:
        deadline = time.monotonic() + 60
        while sum(written) < rows:
            assert not errors, errors
            assert time.monotonic() < deadline, f"writers stalled at {written}"
            stop.wait(0.05)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    try:
        wait_for(200)
        with committed.connect("acme", autocommit=True) as conn:
            conn.execute(GUIDE_ROLLBACK)  # by hand, while the writers go on
        wait_for(sum(written) + 200)  # postings with no trigger and no table
        call_command("repair_balances", "--schema", "acme")
        wait_for(sum(written) + 200)  # postings through the restored trigger
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        connection.set_schema_to_public()
        if not balance_objects_by_schema(["acme"])["acme"].present:
            from inventory.services.repair import balance_objects_restore

            with schema_context("acme"):
                balance_objects_restore()
    assert not errors, errors
    assert count_rows("acme", "inventory_ledger") == sum(written) >= 600
    assert balance_mismatches("acme") == []
    assert migration_validate(schema="acme").ok
