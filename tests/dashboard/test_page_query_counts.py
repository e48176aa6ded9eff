"""List pages read a fixed number of queries however many rows they show (no N+1), within an
absolute budget per page (session, user, routing, memberships and the page's own reads)."""

from __future__ import annotations

import pytest

from tenants.services import organization_create
from tests.page_helpers import assert_same, queries_for

pytestmark = pytest.mark.django_db


def test_the_fleet_does_not_grow_with_organisations(as_admin, acme, globex):
    small = queries_for(as_admin, "/fleet/")
    organization_create(slug="qc-one", name="Query Count One")
    organization_create(slug="qc-two", name="Query Count Two")
    large = queries_for(as_admin, "/fleet/")
    html = as_admin.get("/fleet/").content.decode()
    assert 'data-org="qc-one"' in html and 'data-org="qc-two"' in html
    # 18: the newest good backup (each organisation's backup age) and the fleet runs panel.
    assert_same(small, large, budget=18)


def test_the_backups_page_does_not_grow_with_backups(as_admin):
    from django.utils import timezone

    from operations.models import BackupCheck, BackupRecord

    def add(n):
        for i in range(n):
            r = BackupRecord.objects.create(
                file_name=f"b{i}-{n}.dump", status="ok", started_at=timezone.now()
            )
            BackupCheck.objects.create(ok=True, message="ok", backup=r)

    add(1)
    small = queries_for(as_admin, "/backups/")
    add(8)
    assert_same(small, queries_for(as_admin, "/backups/"), budget=12)
