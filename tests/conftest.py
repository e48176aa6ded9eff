"""Session-wide test setup: the test database is migrated once (triggers included) and the two
tenants, acme and globex, are created once. Each test runs in a transaction that is rolled back;
tests that must commit (concurrency) use the `committed` fixtures in tests/inventory."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from tests.factories import make_user
from tests.inventory.helpers import BackgroundWriters, make_catalog, wipe_tenant
from tests.page_helpers import client_for


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker):
    """Always create the test database. (pytest-django's own fixture sets it up only when some
    collected test is marked for the database; a run of just the `committed` tests would then
    have talked to the development database.)"""
    from django.test.utils import setup_databases, teardown_databases

    from tenants.services import organization_create, public_tenant_ensure

    with django_db_blocker.unblock():
        db_cfg = setup_databases(
            verbosity=request.config.option.verbose, interactive=False, aliases={"default"}
        )
        public_tenant_ensure()
        organization_create(slug="acme", name="Acme Corporation")
        organization_create(slug="globex", name="Globex Corporation")
    yield
    with django_db_blocker.unblock():
        teardown_databases(db_cfg, verbosity=request.config.option.verbose)


@pytest.fixture(autouse=True)
def _fresh_routing_state():
    # Rolled-back tests must not leave the connection in a tenant schema (setting the schema
    # issues no query).
    yield
    connection.set_schema_to_public()


@pytest.fixture
def acme(db):
    from tenants.models import Organization

    return Organization.objects.get(slug="acme")


@pytest.fixture
def globex(db):
    from tenants.models import Organization

    return Organization.objects.get(slug="globex")


@pytest.fixture
def acme_key(acme):
    from tenants.services import api_key_issue

    return api_key_issue(organization=acme, label="acme tests").raw_key


@pytest.fixture
def globex_key(globex):
    from tenants.services import api_key_issue

    return api_key_issue(organization=globex, label="globex tests").raw_key


@pytest.fixture
def api():
    """A test client on the bare platform host."""
    return Client(HTTP_HOST="localhost")


@pytest.fixture
def acme_owner(acme):
    from tenants.models import Membership

    return make_user("acme-owner", org=acme, role=Membership.Role.OWNER)


@pytest.fixture
def globex_owner(globex):
    from tenants.models import Membership

    return make_user("globex-owner", org=globex, role=Membership.Role.OWNER)


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
            # Public records a committing test may have left (never organisations or users).
            cursor.execute(
                "TRUNCATE reconciliation_discrepancies, reconciliation_runs, operations_job_runs, "
                "operations_backup_checks, operations_restore_drills, operations_backups, "
                "alerts_delivery_attempts, alerts_deliveries, alerts_alerts, operations_health_snapshot"
            )


@pytest.fixture
def background_writers(committed):
    """`start(schema, keys, threads=3, max_rows=10)`: sessions posting random rows until the test
    ends (or calls `.stop()`); stopped before `committed` empties the tables."""
    started: list[BackgroundWriters] = []

    def start(schema: str, keys, **options) -> BackgroundWriters:
        started.append(BackgroundWriters(committed, schema, keys, **options))
        return started[-1]

    yield start
    for writers in started:
        writers.stop()


# --- Page tests (tests/<app>/test_*_pages.py): users of each kind, a signed-in client per
# user, jobs run inline. ---------------------------------------------------------------------


@pytest.fixture
def admin_user(db):
    return make_user("platform-admin", superuser=True)


@pytest.fixture
def acme_support(acme):
    from tenants.models import Membership

    return make_user("acme-support", org=acme, role=Membership.Role.SUPPORT)


@pytest.fixture
def globex_support(globex):
    from tenants.models import Membership

    return make_user("globex-support", org=globex, role=Membership.Role.SUPPORT)


@pytest.fixture
def anon():
    return client_for(None)


@pytest.fixture
def as_admin(admin_user):
    return client_for(admin_user)


@pytest.fixture
def as_acme_owner(acme_owner):
    return client_for(acme_owner)


@pytest.fixture
def as_globex_owner(globex_owner):
    return client_for(globex_owner)


@pytest.fixture
def as_acme_support(acme_support):
    return client_for(acme_support)


@pytest.fixture
def as_globex_support(globex_support):
    return client_for(globex_support)


@pytest.fixture
def sync_jobs(monkeypatch):
    """Queued django-q tasks run inline, inside the test's transaction."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def backup_dir(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"
    return settings.BACKUP_DIR
