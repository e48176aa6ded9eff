"""Indexes for the ledger's history pages (issue 18.1): newest first by id for one item (the item
page, /api/ledger?item=) and for one item at one location (/api/ledger?item=&location=).

Without them the planner either walked the primary key backwards filtering on item_id (5,001,000
rows read for a rarely moved item at 5·10^6 rows) or read every row of the item or key through
inventory_ledger_key_idx and sorted them. Not CONCURRENTLY: organisations are created (and
migrated) inside a transaction; on a large ledger the build holds off postings for its seconds.

Also the ledger checkpoint (issue 18.6, inventory/balances.py): each key's sum of the ledger rows
of transactions below `upto_xid`, a fact that never changes (the ledger is append-only and every
transaction below a snapshot's xmin has finished), so an incremental reconciliation adds only
the rows since it instead of re-summing each touched key's history."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0008_stock_policy")]

    operations = [
        migrations.RunSQL(
            """
            CREATE TABLE inventory_ledger_checkpoint (
                item_id bigint NOT NULL,
                location_id bigint NOT NULL,
                lot_key bigint NOT NULL,
                qty numeric NOT NULL,
                PRIMARY KEY (item_id, location_id, lot_key)
            );
            CREATE TABLE inventory_ledger_checkpoint_at (
                one boolean PRIMARY KEY DEFAULT true CHECK (one),
                upto_xid xid8 NOT NULL,
                -- The ledger's file when the checkpoint was taken: a TRUNCATE, a restore or a
                -- VACUUM FULL gives the ledger a new one, and the checkpoint no longer counts.
                ledger_filenode oid NOT NULL
            );
            """,
            "DROP TABLE inventory_ledger_checkpoint, inventory_ledger_checkpoint_at;",
        ),
        migrations.AddIndex(
            model_name="ledgerentry",
            index=models.Index(fields=["item", "id"], name="inventory_ledger_item_id_idx"),
        ),
        migrations.AddIndex(
            model_name="ledgerentry",
            index=models.Index(
                fields=["item", "location", "id"], name="inventory_ledger_item_loc_idx"
            ),
        ),
    ]
