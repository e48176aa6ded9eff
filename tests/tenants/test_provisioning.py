from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection

from tenants.models import ApiKey, Domain, Organization
from tenants.services import api_key_hash, api_key_issue, organization_create

pytestmark = pytest.mark.django_db


def test_it_changes_nothing_when_provisioning_twice(acme):
    before = (Organization.objects.count(), Domain.objects.count())
    org, created = organization_create(slug="acme", name="Another name")
    assert created is False
    assert org.id == acme.id
    assert org.name == "Acme Corporation"
    assert (Organization.objects.count(), Domain.objects.count()) == before


def test_it_creates_schema_and_domain_for_a_new_organisation(db):
    org, created = organization_create(slug="initech", name="Initech")
    assert created
    assert org.schema_name == "initech"
    assert Domain.objects.get(tenant=org).domain == "initech.localhost"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'initech' "
            "AND table_name IN ('inventory_ledger', 'inventory_balances')"
        )
        assert cursor.fetchone()[0] == 2
    again, created_again = organization_create(slug="initech", name="Initech")
    assert (again.id, created_again) == (org.id, False)


@pytest.mark.parametrize("slug", ["", "A", "public", "has space", "-lead", "x" * 50, "UPPER_case"])
def test_it_rejects_bad_slugs(db, slug):
    with pytest.raises(ValidationError):
        organization_create(slug=slug, name="Bad")


def test_it_stores_api_keys_only_as_a_keyed_hash(acme):
    issued = api_key_issue(organization=acme, label="ci")
    stored = ApiKey.objects.get(pk=issued.api_key.pk)
    assert issued.raw_key.startswith(f"ie_{stored.prefix}_")
    assert stored.key_hash == api_key_hash(issued.raw_key)
    assert issued.raw_key not in {stored.key_hash, stored.prefix, stored.label}
    assert len(stored.key_hash) == 64


def test_it_prints_an_issued_key_once_and_the_key_works(acme, capsys, api):
    call_command("issue_api_key", "--org", "acme", "--label", "ci")
    out = capsys.readouterr().out
    raw_key = next(line for line in out.splitlines() if line.startswith("ie_"))
    response = api.get("/api/items-enterprise", headers={"X-Api-Key": raw_key})
    assert response.status_code == 200
    assert response.json()["organization"] == "acme"


def test_it_revokes_a_key_by_command(acme, api, capsys):
    issued = api_key_issue(organization=acme, label="temp")
    call_command("revoke_api_key", "--prefix", issued.api_key.prefix)
    assert "revoked" in capsys.readouterr().out
    assert (
        api.get("/api/items-enterprise", headers={"X-Api-Key": issued.raw_key}).status_code == 401
    )


def test_it_explains_bad_command_input(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No organisation 'nope'"):
        call_command("issue_api_key", "--org", "nope", "--label", "ci")
    with pytest.raises(CommandError, match="label"):
        call_command("issue_api_key", "--org", "acme", "--label", "  ")
    with pytest.raises(CommandError, match="exactly one"):
        call_command("revoke_api_key")


def test_the_public_tenant_exists_with_the_platform_domain(db):
    public = Organization.objects.get(schema_name="public")
    assert Domain.objects.filter(tenant=public, domain="localhost").exists()


@pytest.mark.parametrize(
    "slug", ["information-schema", "pg-toast", "pg-catalog", "pg-anything", "public"]
)
def test_it_refuses_slugs_that_name_postgresql_schemas(db, slug):
    before = (Organization.objects.count(), Domain.objects.count())
    with pytest.raises(ValidationError, match="reserved"):
        organization_create(slug=slug, name="System")
    assert (Organization.objects.count(), Domain.objects.count()) == before


def test_the_command_explains_a_reserved_slug_and_writes_nothing(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="reserved by PostgreSQL"):
        call_command("create_organization", "--slug", "pg-toast", "--name", "Toast")
    assert not Organization.objects.filter(slug="pg-toast").exists()


def test_it_refuses_a_schema_that_already_exists(db):
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA left_behind")
    with pytest.raises(ValidationError, match="already exists"):
        organization_create(slug="left-behind", name="Left behind")
    assert not Organization.objects.filter(slug="left-behind").exists()


def test_it_leaves_nothing_when_creating_the_schema_fails(db, monkeypatch):
    real_create_schema = Organization.create_schema

    def create_then_fail(self, *args, **kwargs):
        real_create_schema(self, *args, **kwargs)  # schema and tables exist now
        raise RuntimeError("migration failed half way")

    def cleanup_fails(self, *args, **kwargs):  # as django-tenants' own clean-up failed for pg_toast
        raise RuntimeError("could not drop the schema")

    monkeypatch.setattr(Organization, "create_schema", create_then_fail)
    monkeypatch.setattr(Organization, "_drop_schema", cleanup_fails)
    with pytest.raises(RuntimeError):
        organization_create(slug="halfway", name="Half way", clone=False)
    assert not Organization.objects.filter(slug="halfway").exists()
    assert not Domain.objects.filter(domain__startswith="halfway.").exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'halfway'")
        assert cursor.fetchone()[0] == 0
    assert connection.schema_name == "public"


def test_it_leaves_nothing_when_a_copied_organisation_fails_after_the_copy(db, monkeypatch):
    # The session's template (built when conftest created acme) is current: this is a copy.
    from tenants import clone, services

    copied = []

    def copy_then_fail(*args, **kwargs):
        copied.append(clone.schema_clone(*args, **kwargs))  # the copy exists now
        raise RuntimeError("failed after the copy")

    monkeypatch.setattr(services, "schema_clone", copy_then_fail)
    with pytest.raises(RuntimeError):
        organization_create(slug="halfcopy", name="Half copy")
    assert copied == [True]
    assert not Organization.objects.filter(slug="halfcopy").exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'halfcopy'")
        assert cursor.fetchone()[0] == 0
    assert connection.schema_name == "public"


@pytest.mark.parametrize("slug", ["pg-toast", "information-schema", "www"])
def test_the_model_form_check_refuses_a_reserved_slug_on_the_slug_field(db, slug):
    # The admin's add form runs full_clean: the refusal is a field error, not a 500 at save.
    with pytest.raises(ValidationError) as refused:
        Organization(slug=slug, name="System", schema_name="").full_clean(exclude=["schema_name"])
    assert list(refused.value.message_dict) == ["slug"]


@pytest.mark.parametrize(("options", "copies"), [((), [True]), (("--migrate",), [])])
def test_it_copies_the_template_unless_the_command_says_migrate(db, monkeypatch, options, copies):
    from tenants import clone, services

    made = []

    def counting_clone(schema_name):
        made.append(clone.schema_clone(schema_name))
        return made[-1]

    monkeypatch.setattr(services, "schema_clone", counting_clone)
    call_command("create_organization", "--slug", "cmd-org", "--name", "Cmd", *options)
    assert made == copies
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM cmd_org.django_migrations")
        assert cursor.fetchone()[0] > 0
