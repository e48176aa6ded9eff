"""One organisation at a time (issue 13.3): its schema restored from a backup into a new,
inactive organisation without touching any other; its schema exported on its own."""

from __future__ import annotations

import subprocess
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tenants.utils import schema_context

from operations.backups import backup_create, pg_tool
from tests.inventory.helpers import make_catalog


@pytest.fixture
def backup_dir(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"
    return settings.BACKUP_DIR


def _balances(committed, schema):
    with committed.connect(schema) as conn:
        return conn.execute(
            "SELECT item_id, location_id, lot_key, qty_canonical FROM inventory_balances ORDER BY 1, 2, 3"
        ).fetchall()


def test_it_restores_one_organisation_into_a_new_inactive_one(committed, backup_dir, capsys):
    from inventory.services.posting import ledger_entries_create
    from tenants.models import Organization

    with schema_context("acme"):
        items, locations, _ = make_catalog(items=3, locations=1, lots_per_item=0)
        entries = [{"item": i.sku, "location": locations[0].code, "qty": "4", "kind": "receipt"} for i in items]
        ledger_entries_create(entries=entries)
    backup_create()
    with schema_context("acme"):
        ledger_entries_create(entries=entries)  # after the backup: not in the restore
    acme_before, globex_before = _balances(committed, "acme"), _balances(committed, "globex")
    new_slug = f"acme-restored-{timezone.now():%Y%m%d}"
    try:
        call_command("restore_organization", "acme")
        org = Organization.objects.get(slug=new_slug)
        assert org.is_active is False and org.schema_name != "acme"
        restored = _balances(committed, org.schema_name)
        assert len(restored) == 3 and all(r[3] == Decimal("4") for r in restored)
        # Posting into the restored organisation writes its own balances, never acme's.
        with committed.connect(org.schema_name) as conn:
            conn.execute(
                "INSERT INTO inventory_ledger (item_id, location_id, qty_canonical, kind, reference, "
                "occurred_at, recorded_at, recorded_by) VALUES (%s, %s, 1, 'receipt', '', now(), now(), '')",
                [restored[0][0], restored[0][1]],
            )
            conn.commit()
        assert _balances(committed, org.schema_name)[0][3] == Decimal("5")
        assert _balances(committed, "acme") == acme_before and all(r[3] == Decimal("8") for r in acme_before)
        assert _balances(committed, "globex") == globex_before
        assert f"restored as {new_slug} (inactive)" in capsys.readouterr().out
    finally:
        org = Organization.objects.filter(slug=new_slug).first()
        if org is not None:
            schema = org.schema_name
            org.domains.all().delete()
            org.delete()
            with committed.connect("public", autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_it_exports_one_organisations_schema_alone(committed, backup_dir, tmp_path):
    target = tmp_path / "acme.dump"
    call_command("export_organization", "acme", "--output", str(target))
    listing = subprocess.run([pg_tool("pg_restore"), "--list", str(target)], capture_output=True, text=True).stdout
    assert "acme inventory_ledger" in listing and "globex" not in listing
    assert " public " not in listing


def test_the_backups_page_restores_one_organisation(committed, backup_dir, monkeypatch):
    from django.test import Client
    from django_q.conf import Conf

    from operations.models import JobRun
    from tenants.models import Organization
    from tests.factories import PASSWORD, make_user

    monkeypatch.setattr(Conf, "SYNC", True)
    record = backup_create()
    admin = make_user("restore-admin", superuser=True)
    client = Client(HTTP_HOST="localhost")
    assert client.login(username=admin.username, password=PASSWORD)
    new_slug = f"globex-restored-{timezone.now():%Y%m%d}"
    try:
        response = client.post("/backups/restore-org/", {"org": "globex", "backup": record.file_name})
        assert response.status_code == 302
        job = JobRun.objects.get(kind="restore_org")
        assert job.status == "succeeded" and job.schema_name == "globex", job.error
        assert job.result["slug"] == new_slug and job.params == {"backup": record.file_name}
        assert Organization.objects.get(slug=new_slug).is_active is False
    finally:
        org = Organization.objects.filter(slug=new_slug).first()
        if org is not None:
            schema = org.schema_name
            org.domains.all().delete()
            org.delete()
            with committed.connect("public", autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        JobRun.objects.all().delete()
        from django.contrib.auth import get_user_model

        get_user_model().objects.filter(username="restore-admin").delete()
