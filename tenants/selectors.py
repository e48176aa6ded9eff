"""The routing read: everything a request needs to find its organisation, in one query.

Key, organisation and domain state grant or refuse access, so they are read from PostgreSQL on
every request, never from a per-process cache: a key revoked, an organisation deactivated or a
domain removed through any process is refused on the next request on every other process.

One round trip does it all: the candidates of every routing step the request can use (X-Org-Id,
the host's slug and its Domain row, the API key joined to its organisation, DEFAULT_ORG) come
back as rows of one UNION ALL, by primary key or unique index. The same statement switches the
session's search_path to the organisation the steps choose (`set_config`), so django-tenants
need not issue a `SET search_path` of its own afterwards (see middleware.py).
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, connections
from django.db.backends.postgresql.base import DatabaseWrapper as PlainPostgresWrapper

from tenants.models import ApiKey, Domain, Organization

# Ranks order the steps as the README does; the search_path goes to the first tenant row.
HEADER, HOST_SLUG, HOST_DOMAIN, KEY, DEFAULT = 1, 2, 3, 4, 5

_ORG_FIELDS = list(Organization._meta.concrete_fields)
_ORG_COLUMNS = ", ".join(f"o.{connection.ops.quote_name(f.column)}" for f in _ORG_FIELDS)
_KEY_COLUMNS = "k.id, k.key_hash, k.revoked_at, k.last_used_at, k.label"
_NO_KEY = "NULL::bigint, NULL::varchar, NULL::timestamptz, NULL::timestamptz, NULL::varchar"


@dataclass(frozen=True)
class ApiKeyRecord:
    id: int
    organization_id: uuid.UUID
    key_hash: str
    revoked: bool
    label: str
    last_used_at: datetime.datetime | None


@dataclass(frozen=True)
class OrgRef:
    """What names an organisation: a UUID or a slug (already checked for form)."""

    org_id: uuid.UUID | None = None
    slug: str | None = None


@dataclass
class RoutingRows:
    header: Organization | None = None
    host_slug: Organization | None = None
    host_domain: Organization | None = None  # may be the public tenant: the platform host
    key: ApiKeyRecord | None = None
    key_org: Organization | None = None
    default: Organization | None = None
    # Schema the query set search_path to ("" for public alone); None when no query ran.
    search_path_schema: str | None = None


def _table(model) -> str:
    qn = connection.ops.quote_name
    return f"{qn(settings.PUBLIC_SCHEMA_NAME)}.{qn(model._meta.db_table)}"


def _org_part(rank: int, ref: OrgRef) -> tuple[str, list]:
    column, value = ("id", ref.org_id) if ref.org_id is not None else ("slug", ref.slug)
    sql = (
        f"SELECT {rank} AS rank, {_ORG_COLUMNS}, {_NO_KEY} FROM {_table(Organization)} o "
        f"WHERE o.{column} = %s AND o.schema_name <> %s"
    )
    return sql, [value, settings.PUBLIC_SCHEMA_NAME]


def routing_rows(
    *,
    header: OrgRef | None = None,
    host_slug: str | None = None,
    host: str | None = None,
    key_prefix: str | None = None,
    default: OrgRef | None = None,
) -> RoutingRows:
    """Read every candidate in one statement, and point search_path at the chosen one.

    Runs on a cursor without django-tenants' `SET search_path`: every table is named with its
    schema, so the session's current path (whatever the last request left) does not matter.
    """
    parts: list[tuple[str, list]] = []
    if header is not None:
        parts.append(_org_part(HEADER, header))
    if host_slug is not None:
        parts.append(_org_part(HOST_SLUG, OrgRef(slug=host_slug)))
    if host is not None:
        # Includes the public tenant's domains: they mark the platform host.
        parts.append(
            (
                f"SELECT {HOST_DOMAIN} AS rank, {_ORG_COLUMNS}, {_NO_KEY} FROM {_table(Domain)} d "
                f"JOIN {_table(Organization)} o ON o.id = d.tenant_id WHERE d.domain = %s",
                [host],
            )
        )
    if key_prefix is not None:
        parts.append(
            (
                f"SELECT {KEY} AS rank, {_ORG_COLUMNS}, {_KEY_COLUMNS} FROM {_table(ApiKey)} k "
                f"JOIN {_table(Organization)} o ON o.id = k.organization_id WHERE k.prefix = %s",
                [key_prefix],
            )
        )
    if default is not None:
        parts.append(_org_part(DEFAULT, default))
    rows = RoutingRows()
    if not parts:
        return rows

    public = settings.PUBLIC_SCHEMA_NAME
    union = " UNION ALL ".join(sql for sql, _ in parts)
    params = [p for _, part_params in parts for p in part_params]
    sql = (
        f"WITH cand AS ({union}), "
        "chosen AS (SELECT schema_name FROM cand WHERE schema_name <> %s ORDER BY rank LIMIT 1) "
        "SELECT (SELECT schema_name FROM chosen), "
        "set_config('search_path', COALESCE((SELECT quote_ident(schema_name) || ', ' FROM chosen),"
        " '') || quote_ident(%s), false), cand.* "
        "FROM (VALUES (1)) AS one (x) LEFT JOIN cand ON true ORDER BY cand.rank"
    )
    # Django's cursor (so the query is logged and counted) minus django-tenants' SET search_path.
    db = connections["default"]
    with PlainPostgresWrapper._cursor(db) as cursor:
        cursor.execute(sql, [*params, public, public])
        fetched = cursor.fetchall()

    rows.search_path_schema = fetched[0][0] or ""
    n_org = len(_ORG_FIELDS)
    names = [f.attname for f in _ORG_FIELDS]
    for row in fetched:
        rank = row[2]
        if rank is None:
            continue
        org = Organization.from_db(db.alias, names, row[3 : 3 + n_org])
        key_id, key_hash, revoked_at, last_used_at, label = row[3 + n_org :]
        if rank == HEADER:
            rows.header = org
        elif rank == HOST_SLUG:
            rows.host_slug = org
        elif rank == HOST_DOMAIN:
            rows.host_domain = org
        elif rank == KEY:
            rows.key_org = org
            rows.key = ApiKeyRecord(
                id=key_id,
                organization_id=org.id,
                key_hash=key_hash,
                revoked=revoked_at is not None,
                label=label,
                last_used_at=last_used_at,
            )
        elif rank == DEFAULT:
            rows.default = org
    return rows
