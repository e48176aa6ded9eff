"""Backups with pg_dump (custom format) and the monitor that says when the last good one is too old.

The client tools come from the pgserver wheel (PostgreSQL 16): pg_dump of a newer major version
dumps older servers, so they also serve a PostgreSQL 14/15 given by DATABASE_URL. PG_BIN_DIR
overrides them. An archive is written as `.partial`, fsynced, then renamed: a file with the final
name is always complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.backends.postgresql.base import DatabaseWrapper as PlainPostgresWrapper
from django.utils import timezone

from operations.models import BackupCheck, BackupRecord

log = logging.getLogger(__name__)
SUFFIX = ".dump"


def pg_tool(name: str) -> str:
    override = os.environ.get("PG_BIN_DIR")
    if override:
        return str(Path(override) / name)
    from config.embedded_db import pg_bin_dir

    return str(pg_bin_dir() / name)


def _conninfo() -> str:
    params = connection.get_connection_params()
    parts = {
        "dbname": params.get("dbname"),
        "host": params.get("host"),
        "port": params.get("port"),
        "user": params.get("user"),
        "password": params.get("password"),
    }
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**{k: v for k, v in parts.items() if v not in (None, "")})


def backup_dir() -> Path:
    path = Path(settings.BACKUP_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _figures(cursor) -> dict:
    """Per organisation schema: ledger rows and quantity sum, balance rows and quantity sum,
    read in the caller's snapshot (the dump's). Schemas without the tables are left out."""
    cursor.execute(
        "SELECT o.schema_name, to_regclass(quote_ident(o.schema_name) || '.inventory_ledger'), "
        "to_regclass(quote_ident(o.schema_name) || '.inventory_balances') "
        "FROM organizations o WHERE o.schema_name <> %s ORDER BY 1",
        [settings.PUBLIC_SCHEMA_NAME],
    )
    figures = {}
    for schema, ledger, balances in cursor.fetchall():
        if ledger is None:
            continue
        q = connection.ops.quote_name(schema)
        cursor.execute(f"SELECT count(*), coalesce(sum(qty_canonical), 0) FROM {q}.inventory_ledger")
        rows, qty = cursor.fetchone()
        entry = {"ledger_rows": rows, "ledger_qty": str(qty)}
        if balances is not None:
            cursor.execute(
                f"SELECT count(*), coalesce(sum(qty_canonical), 0) FROM {q}.inventory_balances"
            )
            rows, qty = cursor.fetchone()
            entry.update(balance_rows=rows, balance_qty=str(qty))
        figures[schema] = entry
    return figures


def _dump(partial: Path) -> dict:
    """pg_dump in a snapshot exported by a REPEATABLE READ transaction that also reads the
    figures: what the backup records is exactly what it holds, even while others post."""
    import psycopg

    with psycopg.connect(_conninfo()) as snap:
        snap.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = snap.execute("SELECT pg_export_snapshot()").fetchone()[0]
        with snap.cursor() as cursor:
            figures = _figures(cursor)
        result = subprocess.run(
            [
                pg_tool("pg_dump"),
                "--format=custom",
                "--compress=6",
                "--no-owner",
                f"--snapshot={snapshot}",
                "--file",
                str(partial),
                "--dbname",
                _conninfo(),
            ],
            capture_output=True,
            text=True,
            timeout=6 * 3600,
        )
        snap.rollback()
    if result.returncode != 0:
        raise RuntimeError(f"pg_dump failed ({result.returncode}): {result.stderr.strip()[:2000]}")
    return figures


def backup_create(*, progress=None) -> BackupRecord:
    """Dump the whole database (every schema) to BACKUP_DIR, then (when configured) copy it
    off-site encrypted. Raises on failure, after recording it; a failed off-site copy leaves the
    local backup ok and the job failed."""
    from operations.offsite import OffsiteError, offsite_config, offsite_prune, offsite_upload

    started = timezone.now()
    t0 = time.monotonic()
    name = f"inventory-{started:%Y%m%dT%H%M%S}-{started.microsecond:06d}Z{SUFFIX}"
    folder = backup_dir()
    final, partial = folder / name, folder / (name + ".partial")
    record = BackupRecord.objects.create(
        file_name=name, status=BackupRecord.Status.FAILED, started_at=started, error="in progress"
    )
    steps = 3
    if progress:
        progress(0, steps, f"pg_dump to {name}")
    try:
        record.figures = _dump(partial)
        with partial.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, final)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        record.size_bytes = final.stat().st_size
        record.sha256 = _sha256(final)
        record.status, record.error = BackupRecord.Status.OK, ""
    except Exception as err:
        partial.unlink(missing_ok=True)
        record.error = str(err)[:5000]
        log.error("backup failed: %s", record.error)
        raise
    finally:
        record.finished_at = timezone.now()
        record.duration_seconds = round(time.monotonic() - t0, 3)
        record.save()
    offsite_failure, config = None, None
    try:
        config = offsite_config()
        if config is not None:
            if progress:
                progress(1, steps, f"encrypting and uploading to s3://{config.bucket}")
            offsite_upload(record, final, config)
    except OffsiteError as err:
        offsite_failure = err
        if record.remote_status != BackupRecord.RemoteStatus.FAILED:  # configuration error
            record.remote_status, record.remote_error = BackupRecord.RemoteStatus.FAILED, str(err)
            record.save(update_fields=["remote_status", "remote_error"])
    if progress:
        progress(2, steps, "pruning old backups")
    backups_prune()
    if offsite_failure is None and config is not None:
        offsite_prune(config)
    if offsite_failure is not None:
        raise offsite_failure
    if progress:
        progress(steps, steps, f"{record.file_name}: {record.size_bytes} bytes")
    return record


def backups_prune(*, keep: int | None = None) -> list[str]:
    """Keep the newest `keep` good backups (BACKUP_RETENTION); delete the older files."""
    from operations.offsite import OffsiteError, offsite_config

    keep = settings.BACKUP_RETENTION if keep is None else keep
    old = list(
        BackupRecord.objects.filter(status=BackupRecord.Status.OK).order_by("-started_at")[keep:]
    )
    try:
        offsite = offsite_config() is not None
    except OffsiteError:
        offsite = True  # configured, but wrongly: keep everything until it is fixed
    removed = []
    for record in old:
        if offsite and record.remote_status not in (
            BackupRecord.RemoteStatus.VERIFIED,
            BackupRecord.RemoteStatus.PRUNED,
        ):
            continue  # nothing is deleted locally before its off-site copy is verified
        (backup_dir() / record.file_name).unlink(missing_ok=True)
        record.status = BackupRecord.Status.PRUNED
        record.save(update_fields=["status"])
        removed.append(record.file_name)
    for stray in backup_dir().glob(f"*{SUFFIX}.partial"):  # left by a killed run
        if time.time() - stray.stat().st_mtime > 24 * 3600:
            stray.unlink(missing_ok=True)
    return removed


@dataclass
class MonitorResult:
    ok: bool
    message: str
    backup: BackupRecord | None


def backups_monitor(*, max_age_hours: float | None = None, min_ratio: float = 0.5) -> MonitorResult:
    """Check the newest good backup: present, recent, non-empty, not much smaller than the one
    before it, and readable by pg_restore. Records the outcome (BackupCheck)."""
    max_age_hours = settings.BACKUP_MAX_AGE_HOURS if max_age_hours is None else max_age_hours
    good = list(
        BackupRecord.objects.filter(status=BackupRecord.Status.OK).order_by("-started_at")[:2]
    )
    newest = good[0] if good else None
    ok, message = _judge(good, max_age_hours, min_ratio)
    BackupCheck.objects.create(ok=ok, message=message[:500], backup=newest)
    (log.info if ok else log.error)("backup monitor: %s", message)
    return MonitorResult(ok, message, newest)


def _judge(good: list[BackupRecord], max_age_hours: float, min_ratio: float) -> tuple[bool, str]:
    if not good:
        return False, "no backup has been taken"
    newest = good[0]
    path = backup_dir() / newest.file_name
    age_h = (timezone.now() - newest.started_at).total_seconds() / 3600
    if age_h > max_age_hours:
        return (
            False,
            f"newest backup {newest.file_name} is {age_h:.1f} h old (limit {max_age_hours} h)",
        )
    if not path.exists():
        return False, f"newest backup file {newest.file_name} is missing"
    size = path.stat().st_size
    if size == 0:
        return False, f"newest backup {newest.file_name} is empty"
    if len(good) > 1 and good[1].size_bytes and size < good[1].size_bytes * min_ratio:
        return False, (
            f"newest backup {newest.file_name} is {size} bytes, less than {min_ratio:.0%} "
            f"of the previous one ({good[1].size_bytes} bytes)"
        )
    listing = subprocess.run(
        [pg_tool("pg_restore"), "--list", str(path)], capture_output=True, text=True, timeout=600
    )
    if listing.returncode != 0:
        return (
            False,
            f"newest backup {newest.file_name} is unreadable: {listing.stderr.strip()[:300]}",
        )
    message = f"newest backup {newest.file_name}: {size} bytes, {age_h:.1f} h old, readable"
    from operations.offsite import OffsiteError, offsite_check, offsite_config

    try:
        config = offsite_config()
    except OffsiteError as err:
        return False, f"off-site copies misconfigured: {err}"
    if config is not None:
        ok, remote = offsite_check(newest, config)
        if not ok:
            return False, remote
        message += f"; {remote}"
    ok, drill = drill_freshness()
    if not ok:
        return False, drill
    wal = wal_archiving_status()
    if wal is not None:
        if not wal.ok:
            return False, wal.message
        from operations.wal_archive import base_backup_freshness

        base_ok, base = base_backup_freshness()
        if not base_ok:
            return False, base
        drill += f"; {wal.message}; {base}"
    from operations.wal_archive import wal_offsite_status

    wal_offsite = wal_offsite_status()
    if wal_offsite is not None:
        if not wal_offsite[0]:
            return False, wal_offsite[1]
        drill += f"; {wal_offsite[1]}"
    return True, f"{message}; {drill}"


def wal_archiving_status(*, archive_mode: str | None = None):
    """pg_stat_archiver of this database's server when archive_mode is on (operations/pitr.py).
    `archive_mode`: the setting as the request's statement already read it (/health's), so that
    off costs no round trip and on costs only the pg_stat_archiver read."""
    from operations.pitr import archiver_check

    if archive_mode == "off":
        return None
    reader = _archiver_connection() if archive_mode is None else _request_connection(archive_mode)
    with reader as conn:
        return archiver_check(conn)


def schema_free_cursor():
    """Django's cursor (so its queries are logged and counted) without django-tenants' `SET
    search_path`, for statements that name every table with its schema: /health on the platform
    host then costs no round trip for the path."""
    return PlainPostgresWrapper._cursor(connection)


@contextmanager
def _archiver_connection():
    """The request's own connection (/health runs often: no connection of its own), shaped like
    a psycopg connection for archiver_check."""
    with _request_connection(None) as conn:
        yield conn


@contextmanager
def _request_connection(archive_mode: str | None):
    # archiver_check reads only pg_catalog: no search_path needed. Its `SHOW archive_mode` is
    # answered from `archive_mode` when the caller read it on this connection just before.
    class _Conn:
        def __init__(self, cursor):
            self.cursor = cursor

        def execute(self, sql, params=None):
            if archive_mode is not None and sql == "SHOW archive_mode":
                return _Fetched((archive_mode,))
            self.cursor.execute(sql, params)
            return self.cursor

    with schema_free_cursor() as cursor:
        yield _Conn(cursor)


@dataclass(frozen=True)
class _Fetched:
    row: tuple

    def fetchone(self) -> tuple:
        return self.row


def drill_freshness() -> tuple[bool, str]:
    """The last good restore drill must be younger than BACKUP_DRILL_MAX_AGE_DAYS (default 8)."""
    from operations.models import RestoreDrill

    last = RestoreDrill.objects.filter(ok=True).order_by("-started_at").first()
    return _drill_verdict(None if last is None else last.started_at, drills_required)


def _drill_verdict(last_good_at, required) -> tuple[bool, str]:
    max_days = float(os.environ.get("BACKUP_DRILL_MAX_AGE_DAYS", 8))
    if last_good_at is None:
        if not required():
            return True, "no restore drill yet"
        return False, "no restore drill has succeeded"
    age_d = (timezone.now() - last_good_at).total_seconds() / 86400
    if age_d > max_days:
        return False, f"last good restore drill is {age_d:.1f} days old (limit {max_days:g})"
    return True, f"last good restore drill {age_d:.1f} days ago"


def drills_required() -> bool:
    """Once the first drill has run (or the oldest backup is older than the drill limit), a
    missing good drill fails the monitor: a fresh install is not failing on day one."""
    from operations.models import RestoreDrill

    if RestoreDrill.objects.exists():
        return True
    first = BackupRecord.objects.order_by("started_at").first()
    return _drills_required(False, None if first is None else first.started_at)


def _drills_required(any_drill: bool, first_backup_at) -> bool:
    if any_drill:
        return True
    max_days = float(os.environ.get("BACKUP_DRILL_MAX_AGE_DAYS", 8))
    return first_backup_at is not None and (timezone.now() - first_backup_at).days >= max_days


def status_rows_sql() -> tuple[str, list]:
    """One row of everything newest_backup_status() judges, tables named with their schema (no
    search_path needed): /health runs it inside its own statement. Each part orders as the ORM
    reads did (started_at DESC, ...), id last so that a tie always picks the same row."""
    from operations.models import RestoreDrill

    qn = connection.ops.quote_name
    public = qn(settings.PUBLIC_SCHEMA_NAME)
    backups, checks, drills = (
        f"{public}.{qn(model._meta.db_table)}"
        for model in (BackupRecord, BackupCheck, RestoreDrill)
    )
    sql = f"""
        SELECT nb.file_name AS newest_file_name, nb.started_at AS newest_started_at,
               nb.finished_at AS newest_finished_at, nb.size_bytes AS newest_size_bytes,
               nb.remote_status AS newest_remote_status, nb.remote_error AS newest_remote_error,
               nb.remote_key AS newest_remote_key,
               nb.remote_verified_at AS newest_remote_verified_at,
               (SELECT started_at FROM {backups} ORDER BY started_at, id LIMIT 1)
                   AS first_backup_at,
               lc.ok AS check_ok, lc.message AS check_message, lc.checked_at AS check_at,
               (SELECT started_at FROM {drills} WHERE ok ORDER BY started_at DESC, id DESC
                LIMIT 1) AS good_drill_at,
               ld.ok AS drill_ok, ld.message AS drill_message, ld.started_at AS drill_at,
               ld.duration_seconds AS drill_seconds,
               current_setting('archive_mode') AS archive_mode
          FROM (VALUES (1)) AS one (x)
          LEFT JOIN LATERAL (SELECT file_name, started_at, finished_at, size_bytes,
                                    remote_status, remote_error, remote_key, remote_verified_at
                               FROM {backups} WHERE status = %s
                              ORDER BY started_at DESC, id DESC LIMIT 1) nb ON true
          LEFT JOIN LATERAL (SELECT ok, message, checked_at FROM {checks}
                              ORDER BY checked_at DESC, id DESC LIMIT 1) lc ON true
          LEFT JOIN LATERAL (SELECT ok, message, started_at, duration_seconds FROM {drills}
                              ORDER BY started_at DESC, id DESC LIMIT 1) ld ON true"""
    return sql, [BackupRecord.Status.OK.value]


def status_rows_read() -> dict:
    """status_rows_sql() run alone: its row as {column: value}."""
    sql, params = status_rows_sql()
    with schema_free_cursor() as cursor:
        cursor.execute(sql, params)
        return dict(zip([c.name for c in cursor.description], cursor.fetchone(), strict=True))


def newest_backup_status(rows: dict | None = None) -> dict | None:
    """For /health: None until a backup was ever attempted. Fails on an old newest backup, a
    failed off-site copy, a failing last monitor run (about the newest backup) and a stale drill.
    `rows`: status_rows_sql()'s row, read by the caller in its own statement; read here if None
    (then the WAL archiver is read through _archiver_connection, which tests point elsewhere)."""
    from operations.offsite import OffsiteError, offsite_config

    if rows is None:
        rows = status_rows_read()
        archive_mode = None
    else:
        archive_mode = rows["archive_mode"]
    if rows["newest_file_name"] is None:
        if rows["first_backup_at"] is None:  # no backup at all, failed or pruned included
            return None
        return {"ok": False, "newest": None, "message": "no successful backup"}
    problems = []
    age = (timezone.now() - rows["newest_started_at"]).total_seconds()
    if age > settings.BACKUP_MAX_AGE_HOURS * 3600:
        problems.append(f"newest backup is older than {settings.BACKUP_MAX_AGE_HOURS} h")
    try:
        offsite = offsite_config() is not None
    except OffsiteError as err:
        offsite = True
        problems.append(f"off-site copies misconfigured: {err}")
    if offsite and rows["newest_remote_status"] != BackupRecord.RemoteStatus.VERIFIED:
        problems.append(
            f"off-site copy not verified: {rows['newest_remote_error'] or 'not uploaded'}"[:300]
        )
    finished = rows["newest_finished_at"]
    if (
        rows["check_at"] is not None
        and not rows["check_ok"]
        and (finished is None or rows["check_at"] >= finished)
    ):
        problems.append(f"backup monitor: {rows['check_message']}")
    drill_ok, drill_message = _drill_verdict(
        rows["good_drill_at"],
        lambda: _drills_required(rows["drill_at"] is not None, rows["first_backup_at"]),
    )
    if not drill_ok:
        problems.append(drill_message)
    wal = wal_archiving_status(archive_mode=archive_mode)
    if wal is not None and not wal.ok:
        problems.append(wal.message)
    from operations.wal_archive import base_backup_freshness, wal_offsite_status

    if wal is not None and not (base := base_backup_freshness())[0]:
        problems.append(base[1])

    wal_offsite = wal_offsite_status()
    if wal_offsite is not None and not wal_offsite[0]:
        problems.append(wal_offsite[1])
    verified_at = rows["newest_remote_verified_at"]
    return {
        "wal_archiving": None if wal is None else {"ok": wal.ok, "message": wal.message},
        "wal_offsite": None
        if wal_offsite is None
        else {"ok": wal_offsite[0], "message": wal_offsite[1]},
        "ok": not problems,
        "newest": rows["newest_file_name"],
        "age_seconds": round(age),
        "size_bytes": rows["newest_size_bytes"],
        "remote": None
        if not offsite
        else {
            "status": rows["newest_remote_status"],
            "key": rows["newest_remote_key"],
            "verified_at": verified_at.isoformat() if verified_at else None,
        },
        "last_monitor": None
        if rows["check_at"] is None
        else {
            "ok": rows["check_ok"],
            "message": rows["check_message"],
            "at": rows["check_at"].isoformat(),
        },
        "last_drill": None
        if rows["drill_at"] is None
        else {
            "ok": rows["drill_ok"],
            "message": rows["drill_message"],
            "at": rows["drill_at"].isoformat(),
            "seconds": rows["drill_seconds"],
        },
        **({"message": "; ".join(problems)} if problems else {}),
    }
