"""C. The HTTP API end to end (`python -m bench --only api`): `make serve`'s gunicorn
(config/gunicorn.conf.py, production settings, workers from the CPU count) on a free port
against the bench database, driven by wrk (Debian's `wrk`; a Python thread-pool client when it
is missing), every case side by side in one run:

    trivial       GET /api/ping (our own JSON view, no tenant query: the floor of the stack)
    health        GET /health
    balance       GET /api/balances?item=…&location=…&lot=none, a random key each request
    items page    GET /api/items-enterprise?page_size=50&cursor=…, a random page each request
    ledger page   GET /api/ledger?limit=50&item=…, a random item each request
    post 1        POST /api/ledger, one entry, a unique Idempotency-Key each request
    post 100      POST /api/ledger, batches of 100 entries, unique keys (entries/s)
    hot key       8 clients POST one entry each to the same (item, location) key

Afterwards: every balance equals its ledger sum, and PostgreSQL's deadlock counter for the
database has not moved. Floors (issue 9): balance >= 0.5x trivial, post 1 >= 0.3x trivial,
post 100 >= 10,000 entries/s, hot key 0 errors and 0 deadlocks.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench import db

SCHEMA = "bench_api"
SLUG = "bench-api"
ITEMS, LOCATIONS, LEDGER_ROWS = 300, 20, 100_000
LOG = db.BASE_DIR / "var" / "bench" / "api-server.log"
ROUNDS = 3
JSON_PATH = db.BASE_DIR / "var" / "bench" / "api.json"


@dataclass
class Case:
    name: str
    connections: int
    method: str = "GET"
    paths: list[str] = field(default_factory=list)  # one picked at random per request
    bodies: list[str] = field(default_factory=list)  # POST: one picked at random per request
    auth: bool = True
    idempotency: bool = False  # a unique Idempotency-Key per request
    entries_per_request: int = 0  # >0: report entries/s too


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- set-up ---------------------------------------------------------------------------------


def prepare(url: str, secret: str, log) -> tuple[str, dict]:
    """The bench_api organisation with a fresh catalogue and ledger, and an API key for it
    (hashed with the server's secret). Returns (key, catalogue codes)."""
    from django.conf import settings

    from tenants.models import Organization
    from tenants.services import api_key_issue, organization_create

    organization_create(slug=SLUG, name="Bench API")
    org = Organization.objects.get(slug=SLUG)
    settings.API_KEY_HMAC_SECRET = secret  # the key must verify in the server's processes
    key = api_key_issue(organization=org, label=f"bench {time.strftime('%H:%M:%S')}").raw_key

    with db.connect(url, SCHEMA) as conn:
        db.configure_variant(conn, SCHEMA, "statement")  # guards off here so TRUNCATE works
        space = db.load_key_space(conn, ITEMS, LOCATIONS, 0, 0)
        rows = db.random_rows(random.Random(7), space.keys, LEDGER_ROWS)
        db.copy_rows(conn, db.copy_chunks(rows))
        conn.execute("VACUUM ANALYZE inventory_ledger")
        conn.execute("VACUUM ANALYZE inventory_balances")
        skus = [r[0] for r in conn.execute("SELECT sku FROM inventory_items ORDER BY sku")]
        codes = [r[0] for r in conn.execute("SELECT code FROM inventory_locations ORDER BY code")]
    log(
        f"api: {SCHEMA} has {len(skus)} items x {len(codes)} locations, {LEDGER_ROWS:,} ledger rows"
    )
    return key, {"skus": skus, "codes": codes}


class Server:
    """`make serve`'s web server: gunicorn -c config/gunicorn.conf.py, production settings."""

    def __init__(self, url: str, secret: str):
        self.port = _free_port()
        LOG.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(LOG, "wb")  # noqa: SIM115
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DEBUG": "false",
            "SECRET_KEY": secret,
            "API_KEY_HMAC_SECRET": secret,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "BASE_DOMAIN": "localhost",
            "SECURE_SSL_REDIRECT": "false",  # no TLS proxy in front of the bench
            "HEALTH_REQUIRE_WORKER": "false",  # no django-q2 worker runs for the bench
            "LOG_LEVEL": "WARNING",
            "GUNICORN_ACCESS_LOG": "off",  # a line per request would be measured too
        }
        for name in ("DJANGO_SETTINGS_MODULE", "REDIS_URL", "DB_POOL", "DB_POOL_MAX_SIZE"):
            env.pop(name, None)
        conf = db.BASE_DIR / "config" / "gunicorn.conf.py"
        command = [str(Path(sys.executable).with_name("gunicorn"))]
        command += (
            ["-c", str(conf)] if conf.exists() else ["-w", str(2 * (os.cpu_count() or 1) + 1)]
        )
        command += ["config.wsgi"]
        self.proc = subprocess.Popen(
            command,
            cwd=db.BASE_DIR,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, key: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {LOG}")
            try:
                status, _ = request(self.port, "GET", "/api/ping", key=key)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"gunicorn did not answer in {timeout} s; see {LOG}")

    def workers(self) -> int:
        import psutil

        return len(psutil.Process(self.proc.pid).children())

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def request(port: int, method: str, path: str, body: str | None = None, key: str | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Host": "127.0.0.1", "Content-Type": "application/json"}
    if key:
        headers["X-Api-Key"] = key
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --- load generators ------------------------------------------------------------------------

WRK_SCRIPT = """
local paths = %(paths)s
local bodies = %(bodies)s
local method, key, idem = "%(method)s", "%(key)s", %(idem)s
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)  -- a global in that thread's Lua state
end
function init(args)
  math.randomseed(os.time() + (tid or 0))
end
function request()
  counter = counter + 1
  local headers = {["Host"] = "127.0.0.1"}
  if key ~= "" then headers["X-Api-Key"] = key end
  local body = nil
  if #bodies > 0 then
    body = bodies[math.random(#bodies)]
    headers["Content-Type"] = "application/json"
  end
  if idem then headers["Idempotency-Key"] = "%(run)s-" .. (tid or 0) .. "-" .. counter end
  return wrk.format(method, paths[math.random(#paths)], headers, body)
end
"""


def _lua_list(values: list[str]) -> str:
    return "{" + ",".join(json.dumps(v) for v in values) + "}"


def run_wrk(port: int, case: Case, key: str, seconds: float, run_id: str) -> dict:
    script = WRK_SCRIPT % {
        "paths": _lua_list(case.paths),
        "bodies": _lua_list(case.bodies),
        "method": case.method,
        "key": key if case.auth else "",
        "idem": "true" if case.idempotency else "false",
        "run": f"{run_id}-{case.name.replace(' ', '')}",
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            ["wrk", "-t", str(min(2, case.connections)), "-c", str(case.connections)]
            + ["-d", f"{seconds:.0f}s", "--latency", "--timeout", "10s", "-s", f.name]
            + [f"http://127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        os.unlink(f.name)
    return _parse_wrk(out)


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * UNITS[unit]


def _parse_wrk(out: str) -> dict:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(g) for g in sock.groups()) if sock else 0
    )
    return {"rps": rps, "requests": total, "p50_ms": p50, "p99_ms": p99, "errors": errors}


def run_threads(port: int, case: Case, key: str, seconds: float, run_id: str) -> dict:
    """Fallback without wrk: one thread per connection, each with a keep-alive connection."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(n: int) -> None:
        rng = random.Random(n)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, bad, counter = [], 0, 0
        while time.monotonic() < stop_at:
            counter += 1
            headers = {"Host": "127.0.0.1"}
            if case.auth:
                headers["X-Api-Key"] = key
            body = None
            if case.bodies:
                body = rng.choice(case.bodies)
                headers["Content-Type"] = "application/json"
            if case.idempotency:
                headers["Idempotency-Key"] = f"{run_id}-{case.name}-{n}-{counter}"
            t0 = time.perf_counter()
            try:
                conn.request(case.method, rng.choice(case.paths), body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                bad += response.status >= 300
            except OSError:
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(case.connections)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "requests": len(latencies),
        "p50_ms": statistics.median(latencies) if latencies else 0.0,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] if latencies else 0.0,
        "errors": errors[0],
    }


# --- the cases ------------------------------------------------------------------------------


def cases(catalog: dict, connections: int, rng: random.Random) -> list[Case]:
    skus, codes = catalog["skus"], catalog["codes"]

    def entry(sku: str, code: str) -> dict:
        return {
            "item": sku,
            "location": code,
            "qty": f"{rng.randint(1, 9999) / 100}",
            "kind": "receipt",
        }

    balance_paths = [
        f"/api/balances?item={rng.choice(skus)}&location={rng.choice(codes)}&lot=none"
        for _ in range(500)
    ]
    item_pages = ["/api/items-enterprise?page_size=50"] + [
        f"/api/items-enterprise?page_size=50&cursor={sku}" for sku in skus[:-50]
    ]
    ledger_pages = [f"/api/ledger?limit=50&item={sku}" for sku in skus]
    one = [json.dumps(entry(rng.choice(skus), rng.choice(codes))) for _ in range(500)]
    batches = [
        json.dumps({"entries": [entry(rng.choice(skus), rng.choice(codes)) for _ in range(100)]})
        for _ in range(50)
    ]
    hot = [json.dumps(entry(skus[0], codes[0])) for _ in range(50)]
    c = connections
    return [
        Case("trivial (/api/ping)", c, paths=["/api/ping"]),
        Case("/health", c, paths=["/health"], auth=False),
        Case("balance lookup", c, paths=balance_paths),
        Case("items page (50)", c, paths=item_pages),
        Case("ledger page (50)", c, paths=ledger_pages),
        Case(
            "POST 1 entry", c, "POST", ["/api/ledger"], one, idempotency=True, entries_per_request=1
        ),
        Case(
            "POST 100 entries",
            c,
            "POST",
            ["/api/ledger"],
            batches,
            idempotency=True,
            entries_per_request=100,
        ),
        Case("hot key, 8 clients", 8, "POST", ["/api/ledger"], hot, entries_per_request=1),
    ]


def _deadlocks(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]


def _balance_mismatches(url: str) -> int:
    with db.connect(url, SCHEMA) as conn:
        return conn.execute(
            """SELECT count(*) FROM (
                   SELECT item_id, location_id, COALESCE(lot_id, 0) AS k, sum(qty_canonical) AS q
                     FROM inventory_ledger GROUP BY 1, 2, 3) l
               FULL JOIN inventory_balances b
                      ON (b.item_id, b.location_id, b.lot_key) = (l.item_id, l.location_id, l.k)
              WHERE b.qty_canonical IS DISTINCT FROM l.q"""
        ).fetchone()[0]


def run(url: str, *, seconds: float, connections: int, log) -> dict:
    secret = secrets.token_urlsafe(50)
    key, catalog = prepare(url, secret, log)
    tool = "wrk" if shutil.which("wrk") else "python threads"
    drive = run_wrk if tool == "wrk" else run_threads
    server = Server(url, secret)
    results = []
    try:
        server.wait_ready(key)
        log(f"api: gunicorn on :{server.port} ({server.workers()} workers), load from {tool}")
        run_id = secrets.token_hex(4)
        deadlocks_before = _deadlocks(url)
        all_cases = cases(catalog, connections, random.Random(11))
        for case in all_cases:
            drive(server.port, case, key, 2, run_id + "w")  # warm-up: connections, caches
        # The cases take turns in ROUNDS short rounds (order reversed every other round), and
        # each figure is the median over the rounds: load from elsewhere on the machine drifts,
        # and then hits every case alike instead of skewing the ratios.
        rounds: dict[str, list[dict]] = {case.name: [] for case in all_cases}
        for n in range(ROUNDS):
            log(
                f"api: round {n + 1} of {ROUNDS}, {len(all_cases)} cases x {seconds / ROUNDS:.0f} s"
            )
            for case in all_cases if n % 2 == 0 else all_cases[::-1]:
                rounds[case.name].append(
                    drive(server.port, case, key, seconds / ROUNDS, f"{run_id}{n}")
                )
        for case in all_cases:
            runs = rounds[case.name]
            result = {
                metric: statistics.median(r[metric] for r in runs)
                for metric in ("rps", "p50_ms", "p99_ms")
            }
            result |= {
                "requests": sum(r["requests"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
                "rounds": runs,
                "case": case.name,
                "connections": case.connections,
            }
            if case.entries_per_request:
                result["entries_per_s"] = result["rps"] * case.entries_per_request
            results.append(result)
        deadlocks = _deadlocks(url) - deadlocks_before
        workers = server.workers()
    finally:
        server.stop()
    mismatches = _balance_mismatches(url)
    by = {r["case"]: r for r in results}
    trivial = by["trivial (/api/ping)"]["rps"]
    for r in results:
        r["ratio"] = r["rps"] / trivial if trivial else 0.0
    hot = by["hot key, 8 clients"]
    floors = [
        ("balance lookup >= 0.5x trivial", by["balance lookup"]["ratio"] >= 0.5),
        ("POST 1 entry >= 0.3x trivial", by["POST 1 entry"]["ratio"] >= 0.3),
        ("POST 100 entries >= 10,000 entries/s", by["POST 100 entries"]["entries_per_s"] >= 10_000),
        ("hot key: 0 errors, 0 deadlocks", hot["errors"] == 0 and deadlocks == 0),
        ("balances equal the ledger sums", mismatches == 0),
    ]
    report = {
        "tool": tool,
        "workers": workers,
        "seconds_per_case": seconds,
        "results": results,
        "deadlocks": deadlocks,
        "balance_mismatches": mismatches,
        "floors": [{"floor": f, "ok": ok} for f, ok in floors],
    }
    JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(json.dumps(report, indent=2) + "\n")
    return report


def table(report: dict) -> str:
    header = ("case", "conns", "req/s", "p50 ms", "p99 ms", "entries/s", "errors", "x trivial")
    rows = [
        (
            r["case"],
            str(r["connections"]),
            f"{r['rps']:,.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['entries_per_s']:,.0f}" if "entries_per_s" in r else "",
            str(r["errors"]),
            f"{r['ratio']:.2f}",
        )
        for r in report["results"]
    ]
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]

    def fmt(row):
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    lines = [fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows), ""]
    lines.append(
        f"gunicorn workers: {report['workers']} · load: {report['tool']} · "
        f"{report['seconds_per_case']:.0f} s per case in {ROUNDS} rounds (medians) · "
        f"deadlocks: {report['deadlocks']} · "
        f"balances differing from the ledger: {report['balance_mismatches']}"
    )
    lines += [f"floor {'ok  ' if f['ok'] else 'FAIL'}  {f['floor']}" for f in report["floors"]]
    return "\n".join(lines)
