"""What /health reports: database reachability, pending migrations per schema, each organisation's
balance objects (read from the catalog, not from django_migrations), the worker's heartbeat and
(once backups exist) the newest backup's age."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from operations.backups import newest_backup_status

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
        if with_table:
            union = " UNION ALL ".join(
                f"SELECT %s, app, name FROM {connection.ops.quote_name(schema)}.django_migrations"
                for schema in with_table
            )
            cursor.execute(union, with_table)
            for schema, app, name in cursor.fetchall():
                applied[schema].add((app, name))
    for schema in schemas:
        missing = known - applied[schema] if schema in applied else known
        result[schema] = sorted(f"{app}.{name}" for app, name in missing)
    return result


def health_report() -> HealthReport:
    report = HealthReport()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        report.checks["database"] = {"ok": True}
    except DatabaseError as err:
        report.checks["database"] = {"ok": False, "error": str(err).strip()[:200]}
        report.failing.append("database")
        return report

    pending = pending_migrations_by_schema()
    behind = {schema: names for schema, names in pending.items() if names}
    report.checks["migrations"] = {
        "ok": not behind,
        "schemas_checked": len(pending),
        "pending": behind,
    }
    if behind:
        report.failing.append("migrations")

    for name, check_func in _APP_CHECKS.items():
        report.checks[name] = check_func()
        if not report.checks[name]["ok"]:
            report.failing.append(name)

    report.checks["worker"] = _worker_check()
    if not report.checks["worker"]["ok"] and settings.HEALTH_REQUIRE_WORKER:
        report.failing.append("worker")

    backups = newest_backup_status()
    if backups is not None:
        report.checks["backups"] = backups
        if not backups["ok"]:
            report.failing.append("backups")
    return report


def _worker_check() -> dict:
    from operations.models import WorkerHeartbeat

    beat = WorkerHeartbeat.objects.order_by("-beat_at").first()
    if beat is None:
        return {"ok": False, "last_heartbeat": None, "message": "no worker heartbeat recorded yet"}
    age = (timezone.now() - beat.beat_at).total_seconds()
    ok = age <= settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS
    return {
        "ok": ok,
        "last_heartbeat": beat.beat_at.isoformat(),
        "age_seconds": round(age, 1),
        **(
            {}
            if ok
            else {
                "message": f"last heartbeat is older than {settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS}s"
            }
        ),
    }
