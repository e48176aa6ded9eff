"""Continuous archiving, run: base backups on a schedule, archived WAL copied off-site as soon
as it is archived (the `ship_wal --follow` process, every WAL_SHIP_POLL_SECONDS; the every-minute
schedule is the safety net), and a local archive that stays bounded (issue 13.4; the restore is
operations/pitr.py).

No table: the truth is on disk and in the bucket.

    WAL_ARCHIVE_DIR/<segment>              written by the server's archive_command (or pg_receivewal)
    WAL_ARCHIVE_DIR/.offsite/<segment>     written once its encrypted copy was read back and matched
    PITR_BASE_DIR/base-<time>-<start WAL>/ pg_basebackup -Ft -z: base.tar.gz, pg_wal.tar.gz, backup_manifest
        offsite.json                       written once every file's encrypted copy matched
    s3://<bucket>/<prefix>wal/<segment>.enc and <prefix>base/<name>/<file>.enc

Settings (environment): WAL_ARCHIVE_DIR (default var/wal-archive, as config/embedded_db.py),
PITR_BASE_DIR (var/base-backups), PITR_BASE_RETENTION (base backups kept, locally and in the
bucket, default 2), PITR_BASE_MAX_AGE_HOURS (the monitor fails when the newest base backup is
older, default 26), WAL_OFFSITE_MAX_LAG_SECONDS (the monitor fails when an archived file waits
longer for its off-site copy, default 300), WAL_SHIP_POLL_SECONDS (how often the shipper looks
at the archive, default 5).

Retention: after a base backup, the base backups past PITR_BASE_RETENTION go, then every archived
segment older than the oldest kept base backup's first segment (what pg_archivecleanup does; here
in Python because it must also skip what is not copied off-site yet): with a bucket configured,
nothing is deleted locally before its remote copy is verified.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from django.conf import settings
from django.utils import timezone
from django_tenants.utils import schema_context

from operations.backups import _conninfo, pg_tool
from operations.jobs import JobAlreadyRunning, job_run_create
from operations.offsite import (
    OffsiteConfig,
    OffsiteError,
    object_keys,
    object_put_verified,
    objects_delete,
    offsite_config,
)
from operations.pitr import PitrError, _run
from operations.registry import JobResult, Progress, job_kind_register, job_run_registered
from operations.schedules import ScheduleSpec, schedule_register

log = logging.getLogger(__name__)

BASE_BACKUP_KIND = "pitr_base_backup"  # JobRun.Kind.PITR_BASE_BACKUP
# A finished segment, a backup history file, a timeline history file; not a .tmp or .partial.
ARCHIVED = re.compile(r"^(?:[0-9A-F]{24}(?:\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history)$")
MARKERS = ".offsite"


def archive_dir() -> Path:
    return Path(
        os.environ.get("WAL_ARCHIVE_DIR") or Path(settings.BASE_DIR) / "var" / "wal-archive"
    )


def base_dir() -> Path:
    return Path(os.environ.get("PITR_BASE_DIR") or Path(settings.BASE_DIR) / "var" / "base-backups")


def base_retention() -> int:
    return max(1, int(os.environ.get("PITR_BASE_RETENTION", 2)))


def archived_files(folder: Path | None = None) -> list[str]:
    folder = folder or archive_dir()
    if not folder.is_dir():
        return []
    return sorted(name for name in os.listdir(folder) if ARCHIVED.match(name))


def _position(name: str) -> str:
    """What orders WAL files (log and segment number, timeline ignored, as pg_archivecleanup)."""
    return name[8:24] if len(name) >= 24 else ""


def segment_name(timeline: int, lsn: str, segment_size: int) -> str:
    hi, lo = lsn.split("/")
    segment = ((int(hi, 16) << 32) | int(lo, 16)) // segment_size
    per_id = 0x100000000 // segment_size
    return f"{timeline:08X}{segment // per_id:08X}{segment % per_id:08X}"


# --- base backups ----------------------------------------------------------------------------


def base_backups() -> list[Path]:
    """Complete base backups, newest first (a name with its start segment: base-<time>-<WAL>)."""
    folder = base_dir()
    if not folder.is_dir():
        return []
    found = [
        p
        for p in folder.iterdir()
        if p.is_dir() and re.fullmatch(r"base-\d{8}T\d{6}Z-[0-9A-F]{24}", p.name)
    ]
    return sorted(found, key=lambda p: p.name, reverse=True)


def base_backup_freshness(*, max_age_hours: float | None = None) -> tuple[bool, str]:
    """The monitor's look when the server archives (the caller checks that): the newest base
    backup younger than PITR_BASE_MAX_AGE_HOURS (default 26: the daily schedule and a margin).
    None yet fails only once the archive holds WAL older than that: archiving has been on that
    long with nothing to replay it onto (a fresh install is not failing in its first day)."""
    if max_age_hours is None:
        max_age_hours = float(os.environ.get("PITR_BASE_MAX_AGE_HOURS", 26))
    bases = base_backups()
    if bases:
        name = bases[0].name
        taken = datetime.strptime(name[5:21], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        age_h = (timezone.now() - taken).total_seconds() / 3600
        if age_h > max_age_hours:
            return False, (
                f"newest base backup {name} is {age_h:.1f} h old (limit {max_age_hours:g} h)"
            )
        return True, f"base backup {name} {age_h:.1f} h old"
    folder = archive_dir()
    files = archived_files(folder)
    oldest = min((folder / name).stat().st_mtime for name in files) if files else time.time()
    waited_h = (time.time() - oldest) / 3600
    if waited_h > max_age_hours:
        return False, (
            f"no base backup in {base_dir()}, and WAL archived {waited_h:.1f} h ago has none "
            f"to replay onto (limit {max_age_hours:g} h)"
        )
    return True, "no base backup yet"


def base_backup_create(*, conninfo: str | None = None, progress: Progress | None = None) -> dict:
    """pg_basebackup (tar, gzip, WAL streamed alongside, fast checkpoint) into PITR_BASE_DIR,
    then its encrypted copy off-site when a bucket is configured, then retention. Refuses when
    the server does not archive: without the WAL after it, a base backup restores to one instant."""
    conninfo = conninfo or _conninfo()
    progress = progress or (lambda done, total, message: None)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if conn.execute("SHOW archive_mode").fetchone()[0] == "off":
            raise PitrError(
                "archive_mode is off on this server: no WAL archive to replay onto a base backup"
            )
        segment_size = int(
            conn.execute(
                "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'"
            ).fetchone()[0]
        )
    started = timezone.now()
    t0 = time.monotonic()
    folder = base_dir()
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"base-{started:%Y%m%dT%H%M%SZ}.partial"
    progress(0, 3, f"pg_basebackup to {partial.name}")
    try:
        _run(
            [
                pg_tool("pg_basebackup"),
                "--dbname",
                conninfo,
                "--pgdata",
                str(partial),
                "--format=tar",
                "--gzip",
                "--wal-method=stream",
                "--checkpoint=fast",
                "--no-password",
            ]
        )
        manifest = json.loads((partial / "backup_manifest").read_text())
        wal = manifest["WAL-Ranges"][0]
        start = segment_name(int(wal["Timeline"]), wal["Start-LSN"], segment_size)
    except Exception:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    final = folder / f"base-{started:%Y%m%dT%H%M%SZ}-{start}"
    os.replace(partial, final)
    size = sum(p.stat().st_size for p in final.iterdir())
    result = {
        "name": final.name,
        "start_wal": start,
        "size_bytes": size,
        "seconds": 0.0,
        "offsite": None,
    }
    config = offsite_config()  # raises when misconfigured: the job fails, the local copy stays
    if config is not None:
        progress(1, 3, f"encrypting and uploading to s3://{config.bucket}")
        result["offsite"] = base_backup_upload(final, config)
    progress(2, 3, "retention")
    result["removed"] = retention_apply(config)
    result["seconds"] = round(time.monotonic() - t0, 2)
    progress(3, 3, f"{final.name}: {size} bytes")
    return result


def base_backup_upload(path: Path, config: OffsiteConfig) -> dict:
    client = config.client()
    files = {}
    for item in sorted(p for p in path.iterdir() if p.is_file() and p.name != "offsite.json"):
        files[item.name] = object_put_verified(
            config, item, f"{config.prefix}base/{path.name}/{item.name}.enc", client=client
        )
    marker = {"bucket": config.bucket, "files": files, "verified_at": timezone.now().isoformat()}
    _write_atomic(path / "offsite.json", json.dumps(marker))
    return marker


# --- WAL off-site ----------------------------------------------------------------------------


def wal_upload(
    config: OffsiteConfig | None = None, *, on_copied: Callable[[str, dict], None] | None = None
) -> dict:
    """Copy every archived file without a marker off-site (oldest first), each encrypted,
    read back and compared before its marker is written (then `on_copied(name, copy)`); then
    local retention. One run at a time (a lock file): the minute's run skips while the shipper
    (or the previous run) uploads."""
    config = config or offsite_config()
    folder = archive_dir()
    if config is None or not folder.is_dir():
        return {
            "uploaded": 0,
            "skipped": "no bucket configured" if config is None else "no archive",
        }
    markers = folder / MARKERS
    markers.mkdir(exist_ok=True)
    with _lock(markers / ".lock") as locked:
        if not locked:
            return {"uploaded": 0, "skipped": "another upload runs"}
        done = set(os.listdir(markers))
        uploaded = []
        client = config.client()
        try:
            for name in archived_files(folder):
                if name in done:
                    continue
                copy = object_put_verified(
                    config, folder / name, f"{config.prefix}wal/{name}.enc", client=client
                )
                _write_atomic(markers / name, json.dumps(copy))
                uploaded.append(name)
                if on_copied is not None:
                    on_copied(name, copy)
        except OffsiteError as err:
            _write_atomic(
                markers / ".error", json.dumps({"at": time.time(), "error": str(err)[:1000]})
            )
            log.error("WAL off-site copy: %s", err)
            raise
        (markers / ".error").unlink(missing_ok=True)
    removed = wal_cleanup(config)
    return {
        "uploaded": len(uploaded),
        "last": uploaded[-1] if uploaded else None,
        "removed": len(removed),
    }


def wal_pending(folder: Path | None = None) -> list[str]:
    """Archived files without a verified off-site copy yet, oldest first."""
    folder = folder or archive_dir()
    markers = folder / MARKERS
    done = set(os.listdir(markers)) if markers.is_dir() else set()
    return [name for name in archived_files(folder) if name not in done]


def wal_ship_follow(
    stop, *, poll_seconds: float | None = None, say: Callable[[str], None] = log.info
) -> None:
    """The shipper (`manage.py ship_wal --follow`, as WAL-G's or Barman's): every
    WAL_SHIP_POLL_SECONDS, copy what the archiver finished off-site at once (wal_upload), so
    the bucket is behind by archive_timeout + a poll + an upload, not by the minute's schedule
    too. An S3 error is kept where the monitor reads it (wal_upload writes .offsite/.error) and
    retried after a pause doubling up to 60 s; no bucket (or a misconfigured one, which the
    monitor reports) leaves it idle, looking again every poll. Returns once `stop` is set."""
    if poll_seconds is None:
        poll_seconds = float(os.environ.get("WAL_SHIP_POLL_SECONDS", 5))
    state, pause = None, poll_seconds
    while not stop.is_set():
        try:
            config = offsite_config()
            idle = None if config is not None else "no bucket configured (BACKUP_S3_BUCKET unset)"
        except OffsiteError as err:
            config, idle = None, f"off-site copies misconfigured: {err}"
        if idle is not None or not archive_dir().is_dir():
            idle = idle or f"no archive folder {archive_dir()} (archiving off)"
            if state != idle:
                say(f"idle: {idle}; looking again every {poll_seconds:g} s")
            state, pause = idle, poll_seconds
            stop.wait(poll_seconds)
            continue
        if state not in ("shipping", "failed"):
            say(f"shipping {archive_dir()} to s3://{config.bucket}/{config.prefix}wal/")
            state = "shipping"
        if wal_pending():
            try:
                wal_upload(config, on_copied=_copied_line(say, config.bucket, stop))
            except _Stopping:
                break  # between two segments: each one copied is marked, the rest wait
            except Exception as err:  # S3 refusing or away (also kept in .offsite/.error)
                say(f"upload failed, retrying in {pause:g} s: {err}"[:2000])
                state = "failed"
                stop.wait(pause)
                pause = min(pause * 2, max(60.0, poll_seconds))
                continue
            if state == "failed":
                say("S3 reachable again: caught up")
            state, pause = "shipping", poll_seconds
        stop.wait(poll_seconds)


class _Stopping(Exception):
    pass


def _copied_line(say: Callable[[str], None], bucket: str, stop) -> Callable[[str, dict], None]:
    """The shipper's line per segment: its key, size, upload time and how long it had waited;
    a TERM during a long catch-up stops it after the segment in hand."""
    last = [time.monotonic()]

    def copied(name: str, copy: dict) -> None:
        now, archived = time.monotonic(), (archive_dir() / name).stat().st_mtime
        say(
            f"{name} copied to s3://{bucket}/{copy['key']} ({copy['size']} bytes, verified, "
            f"{now - last[0]:.1f} s; archived {time.time() - archived:.1f} s ago)"
        )
        last[0] = now
        if stop.is_set():
            raise _Stopping

    return copied


def wal_offsite_status(*, max_lag_seconds: float | None = None) -> tuple[bool, str] | None:
    """The monitor's look (and /health's): None without a bucket or without archived files;
    fails when an archived file has waited longer than WAL_OFFSITE_MAX_LAG_SECONDS for its
    verified copy (the last upload error said with it)."""
    try:
        if offsite_config() is None:
            return None
    except OffsiteError as err:
        return False, f"WAL off-site copies misconfigured: {err}"
    folder = archive_dir()
    files = archived_files(folder)
    if not files:
        return None
    if max_lag_seconds is None:
        max_lag_seconds = float(os.environ.get("WAL_OFFSITE_MAX_LAG_SECONDS", 300))
    markers = folder / MARKERS
    done = set(os.listdir(markers)) if markers.is_dir() else set()
    pending = [name for name in files if name not in done]
    if not pending:
        return True, f"WAL off-site: {files[-1]} copied"
    oldest = min((folder / name).stat().st_mtime for name in pending)
    lag = time.time() - oldest
    if lag <= max_lag_seconds:
        return True, f"WAL off-site: {len(pending)} file(s) waiting, {lag:.0f} s"
    error = ""
    if (markers / ".error").exists():
        error = ": " + json.loads((markers / ".error").read_text())["error"]
    return False, (
        f"WAL off-site copy is {lag:.0f} s behind (limit {max_lag_seconds:g} s), "
        f"{len(pending)} archived file(s) not copied{error}"
    )[:500]


# --- retention -------------------------------------------------------------------------------


def retention_apply(config: OffsiteConfig | None) -> dict:
    """Base backups past PITR_BASE_RETENTION (locally only once copied off-site when a bucket
    is configured), then the WAL older than the oldest base backup kept, locally and remotely."""
    keep = base_retention()
    removed_bases = []
    for path in base_backups()[keep:]:
        if config is not None and not (path / "offsite.json").exists():
            continue  # never deleted locally before its remote copy is verified
        shutil.rmtree(path)
        removed_bases.append(path.name)
    removed_remote = []
    if config is not None:
        client = config.client()
        remote = sorted(
            {k.split("/")[-2] for k in object_keys(config, "base/", client=client)}, reverse=True
        )
        old = set(remote[keep:])
        if old:
            objects_delete(
                config,
                [k for k in object_keys(config, "base/", client=client) if k.split("/")[-2] in old],
                client=client,
            )
            removed_remote.extend(sorted(old))
        kept = remote[:keep]
        if kept:
            cutoff = min(_position_of_base(name) for name in kept)
            stale = [
                k
                for k in object_keys(config, "wal/", client=client)
                if not k.endswith(".history.enc") and _position(k.rsplit("/", 1)[1]) < cutoff
            ]
            objects_delete(config, stale, client=client)
            removed_remote.append(f"{len(stale)} WAL file(s)")
    return {"bases": removed_bases, "wal": len(wal_cleanup(config)), "remote": removed_remote}


def _position_of_base(name: str) -> str:
    return _position(name.rsplit("-", 1)[1])


def wal_cleanup(config: OffsiteConfig | None) -> list[str]:
    """Remove archived files older than the oldest kept base backup's first segment; with a
    bucket, only those with a verified copy. Nothing while a base backup is being taken (its
    first segment is not known yet) or when there is no base backup (nothing says what is old)."""
    folder = archive_dir()
    if any(base_dir().glob("*.partial")) or not folder.is_dir():
        return []
    bases = base_backups()
    if not bases:
        return []
    cutoff = min(_position_of_base(p.name) for p in bases)
    markers = folder / MARKERS
    removed = []
    for name in archived_files(folder):
        if name.endswith(".history") or _position(name) >= cutoff:
            continue
        if config is not None and not (markers / name).exists():
            continue
        (folder / name).unlink(missing_ok=True)
        (markers / name).unlink(missing_ok=True)
        removed.append(name)
    return removed


# --- helpers ---------------------------------------------------------------------------------


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextmanager
def _lock(path: Path):
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- the doors: job kind, schedules ----------------------------------------------------------


@job_kind_register(BASE_BACKUP_KIND, known_errors=(PitrError, OffsiteError))
def base_backup_job(*, schema_name: str, progress: Progress) -> JobResult:
    result = base_backup_create(progress=progress)
    copy = "copied off-site" if result["offsite"] else "local only"
    return JobResult(
        summary=f"base backup {result['name']}: {result['size_bytes']} bytes, {copy}, {result['seconds']:.1f}s",
        data={k: v for k, v in result.items() if k != "offsite"},
    )


def base_backup_task() -> dict:
    """The schedule's base backup, a recorded run like a page's; skipped (not failed) on a
    server that does not archive."""
    with psycopg.connect(_conninfo(), autocommit=True) as conn:
        if conn.execute("SHOW archive_mode").fetchone()[0] == "off":
            return {"skipped": "archive_mode is off"}
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        try:
            job_id = job_run_create(kind=BASE_BACKUP_KIND, requested_by="schedule").id
        except JobAlreadyRunning as err:
            return {"skipped": str(err)}
        return job_run_registered(job_id).result


def wal_upload_task() -> dict:
    """Every minute: no JobRun (1,440 a day would bury the others); a failure fails the task
    (django-q2's failed list) and the monitor reports the lag."""
    return wal_upload()


schedule_register(
    ScheduleSpec(
        "pitr base backup", "operations.wal_archive.base_backup_task", "C", cron="45 0 * * *"
    )
)
schedule_register(
    ScheduleSpec("wal off-site copy", "operations.wal_archive.wal_upload_task", "I", minutes=1)
)
