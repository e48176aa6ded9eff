"""inventory_balances.qty_canonical NUMERIC(18,6) -> NUMERIC(38,6): no sequence of accepted postings
can overflow a balance (issue 17). The ledger's plural for the admin."""

from django.db import migrations

from inventory.sql import read_sql


class Migration(migrations.Migration):
    dependencies = [("inventory", "0006_ledger_drop_redundant_fk_indexes")]

    operations = [
        migrations.RunSQL(
            sql=[read_sql("v4_balance_qty_wide.sql")],
            reverse_sql=[read_sql("v4_balance_qty_wide.reverse.sql")],
        ),
        migrations.AlterModelOptions(
            name="ledgerentry",
            options={"verbose_name_plural": "ledger entries"},
        ),
    ]
