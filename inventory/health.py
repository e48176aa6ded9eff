"""The inventory's part of /health (operations/health.py runs it; registered from ready())."""

from __future__ import annotations

from inventory.services.validation import balance_objects_by_schema
from operations.health import health_check_register
from tenants.models import Organization


@health_check_register("balances")
def balances_check() -> dict:
    """Table, trigger and function of every organisation, in one catalog query for all schemas.
    django_migrations can record 0002 while the guide's rollback SQL has dropped all three; an
    active organisation in that state fails health, named, with the command that fixes it.

    Only organisations that are not whole are listed (an inactive one does not fail health but is
    shown), with the count of those checked: one object per organisation made the answer 110 kB
    at 1,002 organisations and its JSON, not its queries, the cost of /health (issue 18.5)."""
    orgs = list(
        Organization.objects.tenants()
        .order_by("slug")
        .values_list("slug", "schema_name", "is_active")
    )
    objects = balance_objects_by_schema([schema for _, schema, _ in orgs])
    broken = {
        slug: objects[schema]
        for slug, schema, active in orgs
        if active and not objects[schema].live
    }
    check = {
        "ok": not broken,
        "organisations_checked": len(orgs),
        "organisations": {
            slug: objects[schema].as_dict() | ({} if active else {"active": False})
            for slug, schema, active in orgs
            if not objects[schema].live
        },
    }
    if broken:
        check["missing"] = sorted(broken)
        check["message"] = "; ".join(
            f"{slug}: inventory_ledger missing (run manage.py migrate_schemas --schema {o.schema})"
            if not o.ledger
            else f"{slug}: {', '.join(o.missing) or 'trigger disabled'}"
            f" (run manage.py repair_balances --schema {o.schema})"
            for slug, o in broken.items()
        )
    return check
