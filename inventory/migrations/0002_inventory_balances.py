"""The migration guide's 041_inventory_balance_table.sql: inventory_balances, its indexes,
update_inventory_balance() and inventory_ledger_balance_trigger, in every tenant schema.
Reverse (`migrate inventory 0001`) is the guide's rollback: drop trigger, function, table."""

from django.db import migrations

from inventory.sql import read_sql


class Migration(migrations.Migration):
    dependencies = [("inventory", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql=[read_sql("v1_inventory_balances.sql")],
            reverse_sql=[read_sql("v1_inventory_balances.reverse.sql")],
            # Django's view of the table (an unmanaged model) needs no schema change.
        ),
    ]
