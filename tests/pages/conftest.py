"""Fixtures for the page tests: users of each kind, a logged-in client per user, jobs run inline."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import PASSWORD, make_user


def client_for(user=None) -> Client:
    """A client on the platform host, logged in as `user` (anonymous when None)."""
    client = Client(HTTP_HOST="localhost")
    if user is not None:
        assert client.login(username=user.username, password=PASSWORD)
    return client


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
