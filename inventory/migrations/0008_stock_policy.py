"""The no-negative stock policy (issue 14): inventory_settings (one row, in the tenant's schema)
and update_inventory_balance() refusing a posting that would leave a balance below zero when the
policy is on (sql/v5_stock_policy.sql). The model is unmanaged: the SQL file owns the table."""

import django.utils.timezone
from django.db import migrations, models

from inventory.sql import read_sql


class Migration(migrations.Migration):
    dependencies = [("inventory", "0007_balance_qty_wide")]

    operations = [
        migrations.RunSQL(
            sql=[read_sql("v5_stock_policy.sql")],
            reverse_sql=[read_sql("v5_stock_policy.reverse.sql")],
        ),
        migrations.CreateModel(
            name="InventorySettings",
            fields=[
                ("id", models.BooleanField(default=True, primary_key=True, serialize=False)),
                ("no_negative_stock", models.BooleanField(default=False)),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("updated_by", models.TextField(blank=True, default="")),
            ],
            options={
                "verbose_name_plural": "inventory settings",
                "db_table": "inventory_settings",
                "managed": False,
            },
        ),
    ]
