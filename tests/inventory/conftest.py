from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from django_tenants.utils import schema_context

from tests.inventory.helpers import make_catalog, wipe_tenant


@pytest.fixture
def in_acme(acme):
    with schema_context("acme"):
        yield acme


@pytest.fixture
def catalog(in_acme):
    return make_catalog()


class Committed:
    """For tests whose point is concurrency: data really commits, other connections see it."""

    def __init__(self):
        assert connection.settings_dict["NAME"].startswith("test_"), (
            "refusing to commit outside the test database"
        )
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        self.params = params

    def connect(self, schema: str, autocommit: bool = False) -> psycopg.Connection:
        conn = psycopg.connect(**self.params, autocommit=autocommit)
        conn.execute(f'SET search_path TO "{schema}", public')
        if not autocommit:
            conn.commit()
        return conn


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        yield Committed()
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            for schema in ("acme", "globex"):
                wipe_tenant(schema, cursor)
