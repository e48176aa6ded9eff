"""Point-in-time recovery for servers we run: continuous WAL archiving (the server's own
archive_command), periodic pg_basebackup base backups, and a restore to a timestamp into a new
data directory on another port. The tools are the server's own (pgserver's bin/, or PG_BIN_DIR).

The embedded server archives by default (config/embedded_db.py); base backups on a schedule,
the off-site copies and the archive's retention are operations/wal_archive.py. Turning
archiving on for a server of your own (once; needs a server restart, see docs/OPERATIONS.md):

    ALTER SYSTEM SET wal_level = 'replica';
    ALTER SYSTEM SET archive_mode = 'on';
    ALTER SYSTEM SET archive_timeout = '30s';   -- a segment at least every 30 s (with the shipper: RPO < 60 s)
    ALTER SYSTEM SET archive_command = 'test ! -f /archive/%f && cp %p /archive/%f';

PostgreSQL refuses to run as root: when this process is root, the server-side tools run as the
owner of the data directory (pgserver's own user for the embedded server).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from operations.backups import pg_tool


class PitrError(Exception):
    pass


def _run(cmd: list[str], *, user: str | None = None, timeout: float = 3600) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, user=user)
    if result.returncode != 0:
        raise PitrError(
            f"{Path(cmd[0]).name} failed: {(result.stderr or result.stdout).strip()[:1500]}"
        )
    return result.stdout


def server_user(path: Path) -> str | None:
    """Who runs the server's tools: None (this user) unless we are root, then the owner of
    `path` (a data directory, or the folder it is made in), or pgserver for a root-owned one."""
    if os.geteuid() != 0:
        return None
    owner = pwd.getpwuid(path.stat().st_uid).pw_name
    if owner != "root":
        return owner
    try:  # a root-owned folder: the embedded server's own user, when there is one
        return pwd.getpwnam("pgserver").pw_name
    except KeyError:
        return None


def base_backup(conninfo: str, target: Path, *, user: str | None = None) -> Path:
    """pg_basebackup (plain format, WAL streamed alongside, fast checkpoint) into `target`."""
    _run(
        [
            pg_tool("pg_basebackup"),
            "--dbname",
            conninfo,
            "--pgdata",
            str(target),
            "--wal-method=stream",
            "--checkpoint=fast",
            "--no-password",
        ],
        user=user,
    )
    return target


def restore_to_time(
    *,
    base: Path,
    archive: Path,
    target_time: str | None,
    datadir: Path,
    port: int,
    socket_dir: Path | None = None,
    user: str | None = None,
    timeout: float = 300,
) -> str:
    """Copy the base backup into a new data directory, replay the archived WAL up to
    `target_time` (an ISO timestamp with its zone; None: all of it), promote, and start it on `port`. Returns
    a conninfo for the restored server (the caller stops it: `stop(datadir)`)."""
    if datadir.exists():
        raise PitrError(f"{datadir} exists: restore into a new data directory")
    _base_into(base, datadir)
    socket_dir = socket_dir or datadir
    with (datadir / "postgresql.auto.conf").open("a") as conf:
        conf.write(
            "\n# point-in-time restore (operations/pitr.py)\n"
            f"port = {port}\n"
            "listen_addresses = ''\n"
            f"unix_socket_directories = '{socket_dir}'\n"
            "archive_mode = 'off'\n"
            f'restore_command = \'cp "{archive}/%f" "%p"\'\n'
        )
        if target_time is not None:  # None: replay all the archive holds (the latest state)
            conf.write(
                f"recovery_target_time = '{target_time}'\n"
                "recovery_target_action = 'promote'\n"
                "recovery_target_inclusive = 'true'\n"
            )
    (datadir / "recovery.signal").touch()
    (datadir / "postmaster.pid").unlink(missing_ok=True)
    if user:
        shutil.chown(datadir, user)
        for path in datadir.rglob("*"):
            shutil.chown(path, user)
    os.chmod(datadir, 0o700)
    _run(
        [pg_tool("pg_ctl"), "-D", str(datadir), "-l", str(datadir / "restore.log"), "-w", "start"],
        user=user,
        timeout=timeout,
    )
    conninfo = f"host={socket_dir} port={port} dbname=postgres user=postgres"
    deadline = time.monotonic() + timeout
    while True:  # recovery ends with the promotion
        try:
            with psycopg.connect(conninfo, connect_timeout=5) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    segment_size = int(
                        conn.execute(
                            "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'"
                        ).fetchone()[0]
                    )
                    break
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            raise PitrError(
                f"restored server still in recovery after {timeout}s (see {datadir}/restore.log)"
            )
        time.sleep(0.3)
    _check_replayed(datadir, archive, segment_size, latest=target_time is None)
    return conninfo


def _check_replayed(datadir: Path, archive: Path, segment_size: int, *, latest: bool) -> None:
    """A restore_command that cannot read the archive only ends recovery early (PostgreSQL
    takes a missing file for the end of the archive): refuse a restore that could not read a
    file, and a restore to `latest` that stopped before the archive's last segment."""
    log_text = (datadir / "restore.log").read_text(errors="replace")
    if "Permission denied" in log_text:
        raise PitrError(
            f"the server could not read the archive {archive} (Permission denied; see "
            f"{datadir}/restore.log): the restore stopped early"
        )
    if not latest:
        return  # PostgreSQL itself refuses to open when the target time was not reached
    histories = sorted((datadir / "pg_wal").glob("*.history"))
    segments = sorted(p.name for p in archive.iterdir() if len(p.name) == 24 and p.name.isalnum())
    if not histories or not segments:
        return
    switch = histories[-1].read_text().strip().splitlines()[-1].split()[1]  # "tli lsn reason"
    hi, lo = switch.split("/")
    replayed = ((int(hi, 16) << 32) | int(lo, 16)) // segment_size
    per_id = 0x100000000 // segment_size
    last = int(segments[-1][8:16], 16) * per_id + int(segments[-1][16:24], 16)
    if replayed < last:
        raise PitrError(
            f"replay stopped at {switch}, before the archive's last segment {segments[-1]} "
            f"(see {datadir}/restore.log)"
        )


def _base_into(base: Path, datadir: Path) -> None:
    """A plain base backup is copied; a tar one (operations/wal_archive.py: base.tar.gz and
    pg_wal.tar.gz) is unpacked, its WAL into pg_wal/."""
    if not (base / "base.tar.gz").exists():
        shutil.copytree(base, datadir, symlinks=True)
        return
    datadir.mkdir(mode=0o700)
    with tarfile.open(base / "base.tar.gz") as tar:
        tar.extractall(datadir, filter="tar")
    if (base / "pg_wal.tar.gz").exists():
        with tarfile.open(base / "pg_wal.tar.gz") as tar:
            tar.extractall(datadir / "pg_wal", filter="tar")


def offsite_fetch(config, target: Path, *, name: str | None = None) -> tuple[Path, Path]:
    """Download (and decrypt) a base backup from the bucket, the newest or `name`, and every
    archived WAL file from its first segment on: returns (base, archive) for restore_to_time."""
    from operations.offsite import object_get_decrypted, object_keys

    client = config.client()
    bases = sorted({k.split("/")[-2] for k in object_keys(config, "base/", client=client)})
    if name is None and bases:
        name = bases[-1]
    if name not in bases:
        raise PitrError(f"no base backup {name or ''} in s3://{config.bucket}/{config.prefix}base/")
    base, archive = target / name, target / "wal"
    base.mkdir(parents=True)
    archive.mkdir()
    for key in object_keys(config, f"base/{name}/", client=client):
        object_get_decrypted(
            config, key, base / key.rsplit("/", 1)[1].removesuffix(".enc"), client=client
        )
    start = name.rsplit("-", 1)[1][8:24]
    for key in object_keys(config, "wal/", client=client):
        file = key.rsplit("/", 1)[1].removesuffix(".enc")
        if file.endswith(".history") or file[8:24] >= start:
            object_get_decrypted(config, key, archive / file, client=client)
    return base, archive


def stop(datadir: Path, *, user: str | None = None) -> None:
    _run([pg_tool("pg_ctl"), "-D", str(datadir), "-m", "fast", "-w", "stop"], user=user)


@dataclass
class ArchiverStatus:
    ok: bool
    message: str
    archived_count: int = 0
    failed_count: int = 0


def archiver_check(conn, *, max_age_seconds: float | None = None) -> ArchiverStatus | None:
    """pg_stat_archiver on a server with archive_mode on (None when it is off): fails when the
    last attempt failed (a failed archive after the last success), or when the last archived
    segment is older than `max_age_seconds` (BACKUP_WAL_MAX_AGE_SECONDS, default 600; with
    archive_timeout = 60s a busy server archives every minute)."""
    if conn.execute("SHOW archive_mode").fetchone()[0] == "off":
        return None
    if max_age_seconds is None:
        max_age_seconds = float(os.environ.get("BACKUP_WAL_MAX_AGE_SECONDS", 600))
    row = conn.execute(
        "SELECT archived_count, last_archived_wal, extract(epoch FROM now() - last_archived_time), "
        "failed_count, last_failed_wal, last_failed_time > coalesce(last_archived_time, '-infinity'), "
        "pg_walfile_name(pg_current_wal_lsn()) FROM pg_stat_archiver"
    ).fetchone()
    archived, last_wal, age, failed, last_failed_wal, failing, current = row
    if failing:
        return ArchiverStatus(
            False,
            f"WAL archiving is failing: {last_failed_wal} not archived ({failed} failures)",
            archived,
            failed,
        )
    if archived == 0:
        return ArchiverStatus(
            False, "WAL archiving is on but no segment was archived yet", 0, failed
        )
    # An idle server archives nothing (archive_timeout only switches a segment with writes), so
    # age alone is no failure: only with a finished segment still waiting (archiving hangs).
    behind = _segment(current) - _segment(last_wal) - 1
    if age is not None and float(age) > max_age_seconds and behind > 0:
        return ArchiverStatus(
            False,
            f"last archived WAL segment {last_wal} is {float(age):.0f} s old "
            f"(limit {max_age_seconds:g} s) and {behind} finished segment(s) wait",
            archived,
            failed,
        )
    return ArchiverStatus(
        True, f"WAL archiving: {last_wal} {float(age or 0):.0f} s ago", archived, failed
    )


def _segment(name: str | None) -> int:
    """A WAL file name's position (timeline ignored; 16 MiB segments: 256 per log id)."""
    if not name or len(name) < 24:
        return 0
    return int(name[8:16], 16) * 0x100 + int(name[16:24], 16)
