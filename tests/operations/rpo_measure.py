"""Recovery point from the bucket alone with the WAL shipper, measured (docs/OPERATIONS.md "With
the shipper"; two minutes a run, so not a test):

    .venv/bin/python tests/operations/rpo_measure.py random 95   # kill after 95 s of writes
    .venv/bin/python tests/operations/rpo_measure.py worst 40    # kill 0.3 s after a segment is
                                                                 # archived, after 40 s of writes

A throw-away embedded cluster (config/embedded_db.py's settings: archive_timeout 30s), a base
backup, moto as the bucket, `ship_wal --follow` as a process, a writer committing a row every
0.2 s; then the postmaster and the shipper SIGKILLed (the machine is lost), its data directory,
archive and base backups deleted, and `pitr_restore --from-s3 --to latest`. Prints the rows
restored and the seconds lost (kill time minus the last restored commit)."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]
PY = sys.executable


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _moto() -> tuple[subprocess.Popen, str]:
    port = _port()
    proc = subprocess.Popen(
        [PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.2)


def main(mode: str, run: float) -> None:
    root = Path(f"/tmp/wm-{time.monotonic_ns()}")  # short: socket paths
    root.mkdir()
    user = "pgserver" if os.geteuid() == 0 else None
    if user:
        shutil.chown(root, user)
    moto, endpoint = _moto()
    os.environ.update(
        EMBEDDED_PGDATA=str(root / "pgdata"),
        WAL_ARCHIVE_DIR=str(root / "archive"),
        PITR_BASE_DIR=str(root / "bases"),
        BACKUP_S3_BUCKET="rpo",
        BACKUP_S3_ENDPOINT_URL=endpoint,
        BACKUP_S3_PREFIX="inv/",
        BACKUP_S3_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="t",
        AWS_SECRET_ACCESS_KEY="t",
        BACKUP_ENCRYPTION_KEY=base64.urlsafe_b64encode(os.urandom(32)).decode(),
    )
    os.environ.pop("EMBEDDED_WAL_ARCHIVE", None)
    import boto3
    import psycopg

    from config.embedded_db import embedded_database_url

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="rpo")
    url = embedded_database_url("postgres")  # the cluster measured, with archiving as set up
    # Django itself (and the commands below) on the usual server: only `url` is measured.
    env = {k: v for k, v in os.environ.items() if k != "EMBEDDED_PGDATA"}
    os.environ.pop("EMBEDDED_PGDATA")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from operations import pitr, wal_archive

    with psycopg.connect(url, autocommit=True) as conn:
        shown = [conn.execute(f"SHOW {n}").fetchone()[0] for n in ("archive_mode", "archive_timeout")]
        print("archive_mode, archive_timeout:", shown)
        conn.execute("CREATE TABLE w (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    print("base backup", wal_archive.base_backup_create(conninfo=url)["name"])
    log = (root / "ship.log").open("w")
    ship = subprocess.Popen([PY, "manage.py", "ship_wal", "--follow"], env=env, stdout=log, stderr=subprocess.STDOUT)
    stop = threading.Event()

    def writer() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                try:
                    conn.execute("INSERT INTO w DEFAULT VALUES")
                except psycopg.Error:
                    return  # the server is gone
                time.sleep(0.2)

    thread = threading.Thread(target=writer)
    thread.start()
    t0 = time.monotonic()
    archive = root / "archive"

    def segments() -> list[str]:
        return sorted(n for n in os.listdir(archive) if len(n) == 24 and n.isalnum())

    time.sleep(run)
    if mode == "worst":  # just after a switch, before the shipper's next poll copies it
        before = segments()
        while segments() == before:
            time.sleep(0.05)
        time.sleep(0.3)
    os.kill(int((root / "pgdata" / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)
    ship.kill()  # the machine is lost: the shipper with it
    killed = datetime.now(UTC)
    stop.set()
    thread.join()
    log.close()
    print(f"killed at {killed.isoformat()} after {time.monotonic() - t0:.1f} s of writes")
    for gone in (archive, root / "bases", root / "pgdata"):
        shutil.rmtree(gone)
    port, t1 = _port(), time.monotonic()
    restore = subprocess.run(
        [PY, "manage.py", "pitr_restore", "--from-s3", "--to", "latest",
         "--datadir", str(root / "restored"), "--port", str(port)],
        env=env, capture_output=True, text=True,
    )
    seconds = time.monotonic() - t1
    print(restore.stdout.strip()[-400:], restore.stderr.strip()[-800:])
    with psycopg.connect(f"host={root / 'restored'} port={port} dbname=postgres user=postgres") as conn:
        rows, last = conn.execute("SELECT count(*), max(at) FROM w").fetchone()
    lost = (killed - last).total_seconds()
    print(f"{mode}: {rows} rows restored, last commit {last.isoformat()}, {lost:.1f} s lost; restore {seconds:.1f} s")
    print((root / "ship.log").read_text()[-1500:])
    pitr.stop(root / "restored", user=user)
    moto.terminate()
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    os.chdir(HERE)
    sys.path.insert(0, str(HERE))
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 95)
