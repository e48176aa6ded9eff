"""Inactive organisations whose schema holds only a copy of acme's django_migrations: what the
health snapshot's per-schema checks read, without running every migration in each."""

from __future__ import annotations

from django.db import connection


def fake_organisations_create(schemas: list[str]) -> None:
    from tenants.models import Organization

    connection.set_schema_to_public()  # a request on a tenant host may have left another
    with connection.cursor() as cursor:
        for schema in schemas:
            cursor.execute(
                f'CREATE SCHEMA "{schema}"; '
                f'CREATE TABLE "{schema}".django_migrations AS TABLE acme.django_migrations'
            )
            org = Organization(
                slug=schema.replace("_", "-"), name=schema, schema_name=schema, is_active=False
            )
            org.auto_create_schema = False
            org.save()
