"""A schema copied from the template (tenants/clone.py) is the schema migrating would have made:
the catalogs of a copied and a migrated organisation are compared with the schema name
normalised. These commit (pg_dump reads the template from its own connection): the fixture
drops what it made."""

from __future__ import annotations

import time
import uuid

import pytest
from django.db import connection, transaction
from django_tenants.utils import schema_context

from tenants import clone
from tenants.models import Domain, Organization
from tenants.services import organization_create
from tests.factories import LedgerRowFactory, make_catalog, post_rows

# Each query returns rows for schema %(s)s; the schema's name is replaced by <S> afterwards.
CATALOG = {
    "columns": """
        SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid),
               a.attcollation::regcollation::text,
               row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
         WHERE n.nspname = %(s)s""",
    "relations": """
        SELECT c.relname, c.relkind, c.relpersistence, c.relrowsecurity, c.relacl::text,
               c.reloptions::text, pg_get_userbyid(c.relowner)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %(s)s""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = %(s)s",
    "constraints": """
        SELECT c.conname, c.contype, c.conrelid::regclass::text, pg_get_constraintdef(c.oid),
               c.condeferrable, c.condeferred, c.convalidated
          FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
         WHERE n.nspname = %(s)s""",
    "triggers": """
        SELECT t.tgname, t.tgrelid::regclass::text, pg_get_triggerdef(t.oid), t.tgenabled
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %(s)s AND NOT t.tgisinternal""",
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), p.prorettype::regtype::text,
               l.lanname, p.prosrc, p.proconfig::text, p.provolatile, p.prosecdef, p.proacl::text
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          JOIN pg_language l ON l.oid = p.prolang
         WHERE n.nspname = %(s)s""",
    "sequences": """
        SELECT s.sequencename, s.data_type::text, s.start_value, s.min_value, s.max_value,
               s.increment_by, s.cycle, s.cache_size, s.last_value,
               (SELECT d.refobjid::regclass::text || '.' || a.attname || ':' || d.deptype::text
                  FROM pg_depend d
                  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.deptype IN ('a', 'i'))
          FROM pg_sequences s
          JOIN pg_namespace n ON n.nspname = s.schemaname
          JOIN pg_class c ON c.relname = s.sequencename AND c.relnamespace = n.oid
         WHERE s.schemaname = %(s)s""",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = %(s)s",
    "types": """
        SELECT t.typname, t.typtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname = %(s)s""",
}


def catalog(schema: str) -> dict[str, list]:
    dump = {}
    with connection.cursor() as cursor:
        for key, sql in CATALOG.items():
            cursor.execute(sql, {"s": schema})
            rows = [
                tuple(str(v).replace(schema, "<S>") if v is not None else None for v in row)
                for row in cursor.fetchall()
            ]
            dump[key] = sorted(rows, key=repr)
        dump["constraints"] = sorted(
            (_reread_check(cursor, schema, row) for row in dump["constraints"]), key=repr
        )
        cursor.execute(f'SELECT app, name FROM "{schema}".django_migrations ORDER BY app, name')
        dump["django_migrations"] = cursor.fetchall()
        cursor.execute(
            f'SELECT count(*) FROM "{schema}".django_migrations '
            "WHERE applied < now() - interval '10 minutes'"
        )
        dump["old_applied"] = cursor.fetchone()[0]
        counts = []
        for (table,) in _tables(cursor, schema):
            cursor.execute(f'SELECT count(*) FROM "{schema}"."{table}"')
            counts.append((table, cursor.fetchone()[0] if table != "django_migrations" else "-"))
        dump["row_counts"] = counts
    return dump


def _reread_check(cursor, schema: str, row: tuple) -> tuple:
    """A CHECK as PostgreSQL prints it once re-read from its own text. The one difference between
    a copy and a migrated schema: `unit IN ('g', 'ml', 'ea')` on a varchar column is stored by the
    migration as ANY(ARRAY[...]::text[]) and, re-read from pg_dump's text, as
    ANY(ARRAY[...::text]): the same expression, printed two ways. The copy's form re-reads to
    itself, so both sides are compared re-read."""
    name, contype, table, definition = row[:4]
    if contype != "c":
        return row
    table = table.replace("<S>", f'"{schema}"')
    cursor.execute(f"CREATE TEMP TABLE clone_reread (LIKE {table})")
    try:
        cursor.execute(f"ALTER TABLE clone_reread ADD CONSTRAINT reread {definition}")
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'clone_reread'::regclass AND conname = 'reread'"
        )
        reread = cursor.fetchone()[0]
    finally:
        cursor.execute("DROP TABLE clone_reread")
    return (name, contype, row[2], reread, *row[4:])


def _tables(cursor, schema):
    cursor.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", [schema]
    )
    return cursor.fetchall()


@pytest.fixture
def provision(django_db_setup, django_db_blocker):
    """organization_create, committed; every organisation made is dropped afterwards."""
    made = []

    def create(prefix: str, in_transaction: bool = False, **options) -> Organization:
        slug = f"{prefix}{uuid.uuid4().hex[:8]}"
        if in_transaction:
            with transaction.atomic():
                org, created = organization_create(slug=slug, name=slug, **options)
        else:
            org, created = organization_create(slug=slug, name=slug, **options)
        assert created
        made.append(org)
        return org

    with django_db_blocker.unblock():
        assert connection.settings_dict["NAME"].startswith("test_")
        yield create
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            for org in made:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{org.schema_name}" CASCADE')
        Domain.objects.filter(tenant__in=made).delete()
        Organization.objects.filter(pk__in=[o.pk for o in made]).delete()


def test_it_copies_a_schema_identical_to_a_migrated_one(provision):
    migrated = provision("mig", clone=False)
    copied = provision("cln")
    assert clone.template_current() is not None

    want, got = catalog(migrated.schema_name), catalog(copied.schema_name)
    diffs = {
        key: (sorted(set(want[key]) - set(got[key])), sorted(set(got[key]) - set(want[key])))
        for key in want
        if got[key] != want[key]
    }
    assert diffs == {}
    assert got["django_migrations"]  # not two empty lists
    assert got["triggers"] and got["functions"] and got["sequences"]
    # The pinned search_path is the new schema's, not the template's.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.proname, p.proconfig FROM pg_proc p JOIN pg_namespace n "
            "ON n.oid = p.pronamespace WHERE n.nspname = %s AND p.proconfig IS NOT NULL",
            [copied.schema_name],
        )
        pinned = cursor.fetchall()
    assert pinned
    for _name, config in pinned:
        assert config == [f"search_path={copied.schema_name}, public"]
    assert clone.template_schema() not in repr(got)


def test_it_writes_a_new_organisations_balances_with_its_own_trigger(provision):
    copied = provision("bal")
    with schema_context(copied.schema_name):
        items, locations, _lots = make_catalog(items=2, locations=1, lots_per_item=0)
    post_rows(
        copied.schema_name,
        [LedgerRowFactory(item=items[0].sku, location=locations[0].code, qty="7")],
    )
    template = clone.template_schema()
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT qty_canonical FROM "{copied.schema_name}".inventory_balances')
        assert [float(q) for (q,) in cursor.fetchall()] == [7.0]
        cursor.execute(f'SELECT count(*) FROM "{template}".inventory_balances')
        assert cursor.fetchone()[0] == 0
        cursor.execute(f'SELECT count(*) FROM "{template}".inventory_ledger')
        assert cursor.fetchone()[0] == 0


def test_it_provisions_five_organisations_a_second(provision):
    provision("warm")  # the template exists and its text is read
    times = []
    for _ in range(5):
        started = time.perf_counter()
        provision("fast")
        times.append(time.perf_counter() - started)
    assert sorted(times)[2] < 0.2, times  # the median: 2 cores shared with other work


def test_it_migrates_instead_and_rebuilds_when_the_template_is_stale(provision):
    provision("warm")
    template = clone.template_schema()
    oid = clone.template_current()
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{template}".django_migrations (app, name, applied) '
            "VALUES ('inventory', '9999_not_in_the_code', now())"
        )
    assert clone.template_current() is None
    assert clone.schema_clone("h21_never") is False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'h21_never'")
        assert cursor.fetchone() is None

    # Inside a transaction the template cannot be rebuilt (pg_dump would not see it): migrated.
    migrated = provision("intx", in_transaction=True)
    assert clone.template_current() is None
    assert catalog(migrated.schema_name)["django_migrations"] == sorted(clone.code_migrations())

    rebuilt = provision("stale")  # outside a transaction: the template is rebuilt, then copied
    new_oid = clone.template_current()
    assert new_oid is not None and new_oid != oid
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT count(*) FROM "{rebuilt.schema_name}".django_migrations '
            "WHERE name = '9999_not_in_the_code'"
        )
        assert cursor.fetchone()[0] == 0
