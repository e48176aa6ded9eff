"""Which tenant schemas a job or command should visit."""

from __future__ import annotations

from tenants.models import Organization


class UnknownSchema(ValueError):
    pass


def tenant_schemas(*, schema: str | None = None, include_inactive: bool = False) -> list[str]:
    """All tenant schemas (active ones unless asked), or just `schema` after checking it exists."""
    orgs = Organization.objects.tenants()
    if schema is not None:
        if not orgs.filter(schema_name=schema).exists():
            known = (
                ", ".join(orgs.values_list("schema_name", flat=True).order_by("schema_name"))
                or "none"
            )
            raise UnknownSchema(f"No tenant schema {schema!r}. Known: {known}.")
        return [schema]
    if not include_inactive:
        orgs = orgs.filter(is_active=True)
    return list(orgs.order_by("schema_name").values_list("schema_name", flat=True))
