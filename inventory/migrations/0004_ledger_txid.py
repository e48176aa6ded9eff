"""Ledger rows carry their inserting transaction id (xid8), the incremental reconciliation's watermark."""

from django.db import migrations

from inventory.sql import read_sql


class Migration(migrations.Migration):
    dependencies = [("inventory", "0003_ledger_append_only")]

    operations = [
        migrations.RunSQL(
            sql=[read_sql("v2_ledger_txid.sql")],
            reverse_sql=[read_sql("v2_ledger_txid.reverse.sql")],
        ),
    ]
