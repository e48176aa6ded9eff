"""update_inventory_balance() as static SQL pinned to its schema (measured faster than v1's EXECUTE)."""

from django.db import migrations

from inventory.sql import read_sql


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_ledger_txid")]

    operations = [
        migrations.RunSQL(
            sql=[read_sql("v3_balance_function_pinned.sql")],
            reverse_sql=[read_sql("v3_balance_function_pinned.reverse.sql")],
        ),
    ]
