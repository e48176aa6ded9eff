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
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection
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


def backup_create(*, progress=None) -> BackupRecord:
    """Dump the whole database (every schema) to BACKUP_DIR. Raises on failure, after recording it."""
    started = timezone.now()
    t0 = time.monotonic()
    name = f"inventory-{started:%Y%m%dT%H%M%S}-{started.microsecond:06d}Z{SUFFIX}"
    folder = backup_dir()
    final, partial = folder / name, folder / (name + ".partial")
    record = BackupRecord.objects.create(
        file_name=name, status=BackupRecord.Status.FAILED, started_at=started, error="in progress"
    )
    if progress:
        progress(0, 2, f"pg_dump to {name}")
    try:
        result = subprocess.run(
            [
                pg_tool("pg_dump"),
                "--format=custom",
                "--compress=6",
                "--no-owner",
                "--file",
                str(partial),
                "--dbname",
                _conninfo(),
            ],
            capture_output=True,
            text=True,
            timeout=6 * 3600,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"pg_dump failed ({result.returncode}): {result.stderr.strip()[:2000]}"
            )
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
    if progress:
        progress(1, 2, "pruning old backups")
    backups_prune()
    if progress:
        progress(2, 2, f"{record.file_name}: {record.size_bytes} bytes")
    return record


def backups_prune(*, keep: int | None = None) -> list[str]:
    """Keep the newest `keep` good backups (BACKUP_RETENTION); delete the older files."""
    keep = settings.BACKUP_RETENTION if keep is None else keep
    old = list(
        BackupRecord.objects.filter(status=BackupRecord.Status.OK).order_by("-started_at")[keep:]
    )
    removed = []
    for record in old:
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
    return True, f"newest backup {newest.file_name}: {size} bytes, {age_h:.1f} h old, readable"


def newest_backup_status() -> dict | None:
    """For /health: None until a backup was ever attempted."""
    newest = (
        BackupRecord.objects.filter(status=BackupRecord.Status.OK).order_by("-started_at").first()
    )
    if newest is None:
        if not BackupRecord.objects.exists():
            return None
        return {"ok": False, "newest": None, "message": "no successful backup"}
    age = (timezone.now() - newest.started_at).total_seconds()
    ok = age <= settings.BACKUP_MAX_AGE_HOURS * 3600
    last_check = BackupCheck.objects.order_by("-checked_at").first()
    return {
        "ok": ok,
        "newest": newest.file_name,
        "age_seconds": round(age),
        "size_bytes": newest.size_bytes,
        "last_monitor": None
        if last_check is None
        else {
            "ok": last_check.ok,
            "message": last_check.message,
            "at": last_check.checked_at.isoformat(),
        },
        **(
            {}
            if ok
            else {"message": f"newest backup is older than {settings.BACKUP_MAX_AGE_HOURS} h"}
        ),
    }
