"""Real server processes for routing tests: gunicorn (the production server command), each on its
own free port, against the test database. Data the tests want them to see must be committed."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def servers_database_url() -> str:
    s = connection.settings_dict
    assert s["NAME"].startswith("test_"), "servers must only ever see the test database"
    user, password = quote(s["USER"] or ""), quote(s["PASSWORD"] or "")
    socket_dir = (s.get("OPTIONS") or {}).get("host")
    if socket_dir and not s["HOST"]:
        return f"postgresql://{user}:{password}@/{s['NAME']}?host={socket_dir}"
    return f"postgresql://{user}:{password}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, log_dir: Path, threads: int = 1):
        self.port = free_port()
        self.log = open(log_dir / f"gunicorn-{self.port}.log", "w+b")  # noqa: SIM115
        env = {
            **os.environ,
            "DATABASE_URL": servers_database_url(),
            "DEBUG": "true",
            "SECRET_KEY": settings.SECRET_KEY,
            "API_KEY_HMAC_SECRET": settings.API_KEY_HMAC_SECRET,
            "BASE_DOMAIN": settings.BASE_DOMAIN,
            "PUBLIC_DOMAIN": settings.PUBLIC_DOMAIN,
        }
        env.pop("REDIS_URL", None)  # the default configuration: a LocMemCache per process
        env.pop("DJANGO_SETTINGS_MODULE", None)
        self.proc = subprocess.Popen(
            [str(GUNICORN), "config.wsgi", "-w", "1", "--threads", str(threads)]
            + ["-b", f"127.0.0.1:{self.port}"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.output()}")
            try:
                self.get("/health")
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer in {timeout} s: {self.output()}")

    def get(self, path: str, host: str = "localhost", **headers) -> tuple[int, dict | None]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path, headers={"Host": host, **headers})
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, None

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
