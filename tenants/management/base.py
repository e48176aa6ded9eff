"""A base for commands that act per tenant schema: adds --schema and resolves it to the active
tenant schemas. Here, in the lowest app, so every app's commands can use it."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from tenants.schemas import UnknownSchema, tenant_schemas


class TenantCommand(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("--schema", help="one tenant schema (default: every active tenant)")

    def schemas(self, schema: str | None) -> list[str]:
        try:
            return tenant_schemas(schema=schema)
        except UnknownSchema as err:
            raise CommandError(str(err)) from None
