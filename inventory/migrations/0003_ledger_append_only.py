"""The ledger refuses UPDATE, DELETE and TRUNCATE at the database level."""

from django.db import migrations

from inventory.sql import read_sql


class Migration(migrations.Migration):
    dependencies = [("inventory", "0002_inventory_balances")]

    operations = [
        migrations.RunSQL(
            sql=[read_sql("v1_ledger_append_only.sql")],
            reverse_sql=[read_sql("v1_ledger_append_only.reverse.sql")],
        ),
    ]
