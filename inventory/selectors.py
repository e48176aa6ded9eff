"""Reads on the current tenant's inventory."""

from __future__ import annotations

from django.db.models import Sum

from inventory.models import Balance, Item


def items_with_on_hand() -> list[dict]:
    totals = dict(
        Balance.objects.values("item_id")
        .annotate(total=Sum("qty_canonical"))
        .values_list("item_id", "total")
    )
    return [
        {
            "id": item.id,
            "sku": item.sku,
            "name": item.name,
            "unit": item.unit,
            "active": item.is_active,
            "on_hand": str(totals.get(item.id, 0)),
        }
        for item in Item.objects.order_by("sku")
    ]
