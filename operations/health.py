"""What /health reports: database reachability, pending migrations per schema, each organisation's
balance objects (read from the catalog, not from django_migrations), the worker's heartbeat and
(once backups exist) the newest backup's age.

The per-organisation checks (migrations, the apps' checks) cost one lock per schema table read:
2,026 relation locks at 1,003 organisations, and 16 concurrent calls ran out of shared memory.
So they are computed by the worker each minute (and by one request at a time when the stored
result is missing or older than HEALTH_SNAPSHOT_MAX_AGE_SECONDS) into operations_health_snapshot;
/health reads those rows and shows each check's checked_at and age. Any DDL empties
the snapshot (event trigger, migration 0005) and so does migrate (post_migrate), so a dropped
balance table or a new migration is seen at the next call; a hand-edited django_migrations
within a minute.

A call reads everything live in one statement (_live_read: the snapshot rows, the newest
heartbeat, the backup status's rows, archive_mode), tables named with their schema so that no
`SET search_path` precedes it; pg_stat_archiver's row is a second one when backups exist and the
server archives WAL (operations/pitr.py judges it). Nothing is kept between calls: the snapshot
table is the one truth every process reads. tests/operations/test_health_queries.py counts them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from operations.backups import newest_backup_status, schema_free_cursor, status_rows_sql
from operations.schedules import ScheduleSpec, schedule_register

# Worker refresh period: the delay within which a hand-edited django_migrations shows.
schedule_register(
    ScheduleSpec("refresh health", "operations.health.health_snapshot_refresh", "I", minutes=1)
)
# Without a worker, a request recomputes a snapshot older than this (one request at a time).
SNAPSHOT_MAX_AGE_SECONDS = getattr(settings, "HEALTH_SNAPSHOT_MAX_AGE_SECONDS", 120)
# Schemas per UNION ALL: bounds the relation locks one query holds (two per schema).
_SCHEMAS_PER_QUERY = 100
# pg_advisory_lock key: only one computation of the snapshot at a time.
_REFRESH_LOCK = 0x6865616C7468  # "health"

# Checks the apps above operations declare from their ready() (inventory: "balances"), run in
# that order after the migrations check. operations names no app above it (make lint's layers).
_APP_CHECKS: dict[str, Callable[[], dict]] = {}


def health_check_register(name: str):
    """Decorator: `func()` returns a dict with at least "ok"; a false "ok" fails /health as `name`."""

    def register(func: Callable[[], dict]) -> Callable[[], dict]:
        _APP_CHECKS[name] = func
        return func

    return register


@dataclass
class HealthReport:
    checks: dict = field(default_factory=dict)
    failing: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.failing

    def as_dict(self) -> dict:
        return {
            "status": "ok" if self.healthy else "failing",
            "failing": self.failing,
            **self.checks,
        }


def _known_migrations() -> set[tuple[str, str]]:
    # Read from disk only; every schema records every migration (django-tenants runs all
    # apps' migrations in each schema, skipping the operations that do not belong there).
    return set(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


def pending_migrations_by_schema(schemas: list[str] | None = None) -> dict[str, list[str]]:
    """Migrations on disk not recorded as applied, per schema, read in one query for all schemas."""
    from tenants.models import Organization

    known = _known_migrations()
    if schemas is None:
        schemas = [settings.PUBLIC_SCHEMA_NAME] + list(
            Organization.objects.tenants()
            .order_by("schema_name")
            .values_list("schema_name", flat=True)
        )
    result: dict[str, list[str]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema FROM information_schema.tables "
            "WHERE table_name = 'django_migrations' AND table_schema = ANY(%s)",
            [schemas],
        )
        with_table = [row[0] for row in cursor.fetchall()]
        applied: dict[str, set] = {schema: set() for schema in with_table}
        for start in range(0, len(with_table), _SCHEMAS_PER_QUERY):
            batch = with_table[start : start + _SCHEMAS_PER_QUERY]
            union = " UNION ALL ".join(
                f"SELECT %s, app, name FROM {connection.ops.quote_name(schema)}.django_migrations"
                for schema in batch
            )
            cursor.execute(union, batch)
            for schema, app, name in cursor.fetchall():
                applied[schema].add((app, name))
    for schema in schemas:
        missing = known - applied[schema] if schema in applied else known
        result[schema] = sorted(f"{app}.{name}" for app, name in missing)
    return result


def _checks_compute() -> dict[str, dict]:
    """The per-organisation checks, over every schema: the expensive part of /health."""
    pending = pending_migrations_by_schema()
    behind = {schema: names for schema, names in pending.items() if names}
    checks = {"migrations": {"ok": not behind, "schemas_checked": len(pending), "pending": behind}}
    for name, check_func in _APP_CHECKS.items():
        checks[name] = check_func()
    return checks


def health_snapshot_refresh() -> str:
    """Worker task (each minute): recompute the per-organisation checks and store them."""

    with _refresh_lock():
        checks = _snapshot_write()
    return f"{len(checks)} health checks refreshed"


def _snapshot_write() -> dict[str, dict]:
    from operations.models import HealthSnapshot

    checks = _checks_compute()
    now = timezone.now()
    for name, result in checks.items():
        HealthSnapshot.objects.update_or_create(
            name=name, defaults={"result": result, "checked_at": now}
        )
    HealthSnapshot.objects.exclude(name__in=list(checks)).delete()
    return checks


def health_snapshot_invalidate(**kwargs) -> None:
    """post_migrate receiver: the schema just migrated is checked again at the next /health."""
    from operations.models import HealthSnapshot

    try:
        with transaction.atomic():
            HealthSnapshot.objects.all().delete()
    except DatabaseError:  # the snapshot table itself not migrated yet
        pass


class _refresh_lock:
    # A session advisory lock: concurrent requests finding no snapshot wait for the one that
    # computes it, then read its result, instead of each reading every schema.
    def __enter__(self):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [_REFRESH_LOCK])

    def __exit__(self, *exc):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_REFRESH_LOCK])


def _snapshot_read() -> dict[str, tuple[dict, datetime]]:
    from operations.models import HealthSnapshot

    return {s.name: (s.result, s.checked_at) for s in HealthSnapshot.objects.all()}


def _snapshot_current(snapshot: dict[str, tuple[dict, datetime]]) -> bool:
    expected = {"migrations", *_APP_CHECKS}
    if set(snapshot) != expected:
        return False
    oldest = min(checked_at for _, checked_at in snapshot.values())
    return (timezone.now() - oldest).total_seconds() <= SNAPSHOT_MAX_AGE_SECONDS


def _snapshot_fresh() -> dict[str, tuple[dict, datetime]]:
    """The snapshot, recomputed first (one request at a time) when missing or too old."""
    snapshot = _snapshot_read()
    if not _snapshot_current(snapshot):
        with _refresh_lock():
            snapshot = _snapshot_read()  # another request may have just computed it
            if not _snapshot_current(snapshot):
                _snapshot_write()
                snapshot = _snapshot_read()
    return snapshot


def pending_migrations_for(schemas: list[str]) -> dict[str, list[str]]:
    """Pending migrations of these schemas in a number of queries that does not grow with them:
    read live when they fit one query, else from the health snapshot (refreshed every minute,
    emptied by any DDL or migrate, so it says what the database says within that delay)."""
    if len(schemas) <= _SCHEMAS_PER_QUERY:
        return pending_migrations_by_schema(schemas)
    behind = _snapshot_fresh()["migrations"][0].get("pending", {})
    return {schema: behind.get(schema, []) for schema in schemas}


@dataclass
class _Live:
    """What a /health call reads, all in one statement (_live_read)."""

    snapshot: dict[str, tuple[dict, datetime]]
    beat_at: datetime | None
    backups: dict  # operations.backups.status_rows_sql()'s row


def _live_read() -> _Live:
    """The snapshot rows, the newest heartbeat and the backup status's rows in one round trip,
    every table named with its schema (no `SET search_path` first). One output row per snapshot
    row (one with NULL snapshot columns when it is empty), the rest repeated on each."""
    from operations.models import HealthSnapshot, WorkerHeartbeat

    qn = connection.ops.quote_name
    public = qn(settings.PUBLIC_SCHEMA_NAME)
    status_sql, params = status_rows_sql()
    sql = (
        f"SELECT s.name AS snapshot_name, s.result AS snapshot_result, "
        f"s.checked_at AS snapshot_checked_at, "
        f"(SELECT max(beat_at) FROM {public}.{qn(WorkerHeartbeat._meta.db_table)}) AS beat_at, "
        f"st.* FROM ({status_sql}) st "
        f"LEFT JOIN {public}.{qn(HealthSnapshot._meta.db_table)} s ON true"
    )
    result_field = HealthSnapshot._meta.get_field("result")
    with schema_free_cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    first = rows[0]
    snapshot = {
        row["snapshot_name"]: (
            result_field.from_db_value(row["snapshot_result"], None, connection),
            row["snapshot_checked_at"],
        )
        for row in rows
        if row["snapshot_name"] is not None
    }
    return _Live(snapshot=snapshot, beat_at=first["beat_at"], backups=first)


def health_report() -> HealthReport:
    """One statement when the snapshot is current (the worker keeps it so), plus the WAL
    archiver's row when backups exist and the server archives: the database check is that
    statement answering."""
    report = HealthReport()
    try:
        live = _live_read()
    except DatabaseError as err:
        report.checks["database"] = {"ok": False, "error": str(err).strip()[:200]}
        report.failing.append("database")
        return report
    report.checks["database"] = {"ok": True}

    snapshot = live.snapshot if _snapshot_current(live.snapshot) else _snapshot_fresh()
    now = timezone.now()
    for name in ["migrations", *_APP_CHECKS]:
        result, checked_at = snapshot[name]
        if name == "migrations":
            result = _pending_shown(result)
        report.checks[name] = {
            **result,
            "checked_at": checked_at.isoformat(),
            "age_seconds": round((now - checked_at).total_seconds(), 1),
        }
        if not result["ok"]:
            report.failing.append(name)

    report.checks["worker"] = _worker_check(live.beat_at)
    if not report.checks["worker"]["ok"] and settings.HEALTH_REQUIRE_WORKER:
        report.failing.append("worker")

    backups = newest_backup_status(live.backups)
    if backups is not None:
        report.checks["backups"] = backups
        if not backups["ok"]:
            report.failing.append("backups")
    return report


# /health names at most this many schemas behind: right after a deploy every one of 1,000 is, and
# listing them all made the answer 70 kB (its JSON, not its queries, was then the cost of a call).
PENDING_SHOWN_MAX = 20


def _pending_shown(result: dict) -> dict:
    """The migrations check as /health shows it: the count of schemas behind, the first of them."""
    pending = result.get("pending", {})
    shown = dict(sorted(pending.items())[:PENDING_SHOWN_MAX])
    return {**result, "schemas_behind": len(pending), "pending": shown} | (
        {"pending_truncated": True} if len(shown) < len(pending) else {}
    )


def _worker_check(beat_at: datetime | None) -> dict:
    if beat_at is None:
        return {"ok": False, "last_heartbeat": None, "message": "no worker heartbeat recorded yet"}
    age = (timezone.now() - beat_at).total_seconds()
    ok = age <= settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS
    return {
        "ok": ok,
        "last_heartbeat": beat_at.isoformat(),
        "age_seconds": round(age, 1),
        **(
            {}
            if ok
            else {
                "message": f"last heartbeat is older than {settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS}s"
            }
        ),
    }
