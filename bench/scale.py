"""`python -m bench --only scale` (issue 18): one organisation grown to 5·10^6 ledger rows and a
server with 1,000 organisations, built once in their own database (inventory_scale on the
embedded server, or BENCH_SCALE_DATABASE_URL) and reused by every later run; each figure of the
issue is printed against its floor, next to the bare SQL (ledger SUM, COPY) it competes with.

The build (minutes on 2 cores; --quick: 10^5 rows, 50 organisations, seconds) is recorded in
public.bench_scale_build, one row per part with the parameters it was built with: a part whose
parameters match is reused; --scale-rebuild builds everything again.

    scale_big     many items (a few thousand rows each), one big item (a fifth of the ledger,
                  interleaved through the whole history), a few rarely moved items (10 rows each,
                  at the very start of the history), lots on every 5th item. Loaded with
                  generate_series, triggers off (session_replication_role = replica) and the
                  secondary indexes built afterwards; the balances are one SUM GROUP BY.
    scale_import  the import target (ledger, balances, postings and catalogue emptied per run)
    scale-fleet-* empty organisations copied from the template (tenants/clone.py)

Measurements (medians; the machine's 2 cores are shared with other work, so the load average is
printed): see `measure` and docs/PERFORMANCE.md ("Scale").
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from bench.child_rss import run_measured
from bench.db import BASE_DIR

SCALE_DB_NAME = "inventory_scale"
JSON_PATH = BASE_DIR / "var" / "bench" / "scale.json"
BIG_SLUG, IMPORT_SLUG, FLEET_PREFIX = "scale-big", "scale-import", "scale-fleet-"
BIG_SCHEMA, IMPORT_SCHEMA = "scale_big", "scale_import"
IMPORT_RUNS = 3  # the default import's runs; the median is reported
RARE_ITEMS, RARE_ROWS = 5, 10  # items 1..5, 10 rows each, the first rows of the history
BIG_ITEM = RARE_ITEMS + 1  # item 6
STEP = 7919  # a prime: row r goes to regular key (r * STEP) % keys (spread, deterministic)
LOAD_BATCH = 1_000_000


@dataclass(frozen=True)
class Params:
    rows: int
    items: int
    locations: int
    lot_every: int
    lots_per_item: int
    big_every: int  # every n-th row is the big item's
    organisations: int
    import_rows: int


FULL = Params(5_000_000, 10_000, 20, 5, 2, 5, 1_000, 1_000_000)
QUICK = Params(100_000, 500, 10, 5, 2, 5, 50, 20_000)


def scale_database_url() -> str:
    url = os.environ.get("BENCH_SCALE_DATABASE_URL")
    if url:
        return url
    from config.embedded_db import embedded_database_url

    return embedded_database_url(SCALE_DB_NAME)


def _ensure_database(url: str) -> None:
    """CREATE DATABASE inventory_scale when missing (on the embedded server)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = info.get("dbname")
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def django_setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url  # settings read it; never the dev or test database
    os.environ["DEBUG"] = "true"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


# --- the build marker -----------------------------------------------------------------------

MARKER_DDL = """CREATE TABLE IF NOT EXISTS public.bench_scale_build (
    part text PRIMARY KEY, params jsonb NOT NULL, built_at timestamptz NOT NULL,
    seconds double precision NOT NULL)"""


def _built(conn, part: str, params: dict) -> bool:
    conn.execute(MARKER_DDL)
    row = conn.execute("SELECT params FROM public.bench_scale_build WHERE part = %s", [part])
    found = row.fetchone()
    return found is not None and found[0] == params


def _mark(conn, part: str, params: dict, seconds: float) -> None:
    conn.execute(
        "INSERT INTO public.bench_scale_build VALUES (%s, %s, now(), %s) ON CONFLICT (part) "
        "DO UPDATE SET params = EXCLUDED.params, built_at = now(), seconds = EXCLUDED.seconds",
        [part, json.dumps(params), seconds],
    )


def _unmark(conn, part: str) -> None:
    conn.execute(MARKER_DDL)
    conn.execute("DELETE FROM public.bench_scale_build WHERE part = %s", [part])


# --- the 5·10^6-row organisation --------------------------------------------------------------


def _guards_off(conn) -> None:
    """The append-only guards, off in the bench schemas only (so TRUNCATE can reset them)."""
    conn.execute("ALTER TABLE inventory_ledger DISABLE TRIGGER inventory_ledger_no_update_delete")
    conn.execute("ALTER TABLE inventory_ledger DISABLE TRIGGER inventory_ledger_no_truncate")


def _schema_conn(url: str, schema: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(f"SET search_path TO {schema}, public")
    return conn


LEDGER_INSERT = """
INSERT INTO inventory_ledger (item_id, location_id, lot_id, qty_canonical, kind, reference,
                              occurred_at, recorded_at, recorded_by)
SELECT CASE WHEN big THEN %(big_item)s ELSE k.item_id END,
       CASE WHEN big THEN 1 + (g.r / %(big_every)s) %% %(locations)s ELSE k.location_id END,
       CASE WHEN big THEN NULL ELSE k.lot_id END,
       CASE WHEN g.r %% 10 < 4 THEN -1.5 ELSE 2.25 END,
       CASE WHEN g.r %% 10 < 4 THEN 'issue' ELSE 'receipt' END,
       '', t, t, ''
  FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g(r)
 CROSS JOIN LATERAL (SELECT g.r %% %(big_every)s = 0 AS big,
                            timestamptz '2020-01-01 00:00:00+00' + g.r * interval '1 second' AS t) x
  JOIN scale_keys k ON k.k = (g.r * %(step)s) %% %(nkeys)s
 ORDER BY g.r"""


def _big_params(p: Params) -> dict:
    d = asdict(p)
    return {k: d[k] for k in ("rows", "items", "locations", "lot_every", "lots_per_item", "big_every")}


def build_big(url: str, p: Params, log) -> None:
    from tenants.services import organization_create

    organization_create(slug=BIG_SLUG, name="Scale: 5·10^6 ledger rows")
    started = time.perf_counter()
    with _schema_conn(url, BIG_SCHEMA) as conn:
        _guards_off(conn)
        conn.execute("SET session_replication_role = replica")  # no triggers: FKs, balances
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute(
            "TRUNCATE inventory_ledger, inventory_balances, inventory_postings, inventory_lots, "
            "inventory_items, inventory_locations, inventory_ledger_checkpoint, "
            "inventory_ledger_checkpoint_at RESTART IDENTITY CASCADE"
        )
        conn.execute(
            "INSERT INTO inventory_items (sku, name, unit, is_active, created_at) "
            "SELECT 'SKU-' || lpad(g::text, 6, '0'), 'Item ' || g, 'ea', true, now() "
            "FROM generate_series(1, %s) g ORDER BY g",
            [p.items],
        )
        conn.execute(
            "INSERT INTO inventory_locations (code, name, site, is_active) "
            "SELECT 'LOC-' || lpad(g::text, 3, '0'), 'Location ' || g, '', true "
            "FROM generate_series(1, %s) g ORDER BY g",
            [p.locations],
        )
        conn.execute(
            "INSERT INTO inventory_lots (item_id, code) "
            "SELECT i.id, 'LOT-' || i.id || '-' || k FROM inventory_items i, "
            "generate_series(1, %s) k WHERE i.id > %s AND i.id %% %s = 0 ORDER BY i.id, k",
            [p.lots_per_item, BIG_ITEM, p.lot_every],
        )
        # Regular keys numbered 0..n-1: every (item, location[, lot]) of items after the big one.
        conn.execute("DROP TABLE IF EXISTS public.scale_keys")
        conn.execute(
            "CREATE TABLE public.scale_keys AS "
            "SELECT (row_number() OVER (ORDER BY i.id, l.id, lot.id) - 1)::int AS k, "
            "       i.id AS item_id, l.id AS location_id, lot.id AS lot_id "
            "  FROM inventory_items i CROSS JOIN inventory_locations l "
            "  LEFT JOIN inventory_lots lot ON lot.item_id = i.id WHERE i.id > %s",
            [BIG_ITEM],
        )
        conn.execute("ALTER TABLE public.scale_keys ADD PRIMARY KEY (k)")
        nkeys = conn.execute("SELECT count(*) FROM public.scale_keys").fetchone()[0]
        assert nkeys % STEP, "the key count must not be a multiple of STEP"
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s "
            "AND tablename = 'inventory_ledger' AND indexname <> 'inventory_ledger_pkey'",
            [BIG_SCHEMA],
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        rare = RARE_ITEMS * RARE_ROWS
        conn.execute(
            "INSERT INTO inventory_ledger (item_id, location_id, lot_id, qty_canonical, kind, "
            "reference, occurred_at, recorded_at, recorded_by) "
            "SELECT 1 + (g - 1) %% %s, 1, NULL, 3, 'receipt', '', "
            "timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second', "
            "timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second', '' "
            "FROM generate_series(1, %s) g ORDER BY g",
            [RARE_ITEMS, rare],
        )
        lo = rare + 1
        while lo <= p.rows:
            hi = min(lo + LOAD_BATCH - 1, p.rows)
            conn.execute(
                LEDGER_INSERT,
                {
                    "big_item": BIG_ITEM,
                    "big_every": p.big_every,
                    "locations": p.locations,
                    "lo": lo,
                    "hi": hi,
                    "step": STEP,
                    "nkeys": nkeys,
                },
            )
            log(f"scale: ledger at {hi:,} rows ({time.perf_counter() - started:.0f}s)")
            lo = hi + 1
        for _name, ddl in indexes:
            conn.execute(ddl)
        log(f"scale: {len(indexes)} ledger indexes built ({time.perf_counter() - started:.0f}s)")
        conn.execute(
            "INSERT INTO inventory_balances (item_id, location_id, lot_id, qty_canonical, "
            "last_ledger_id, updated_at) SELECT item_id, location_id, lot_id, sum(qty_canonical), "
            "max(id), now() FROM inventory_ledger GROUP BY 1, 2, 3"
        )
        conn.execute("DROP TABLE public.scale_keys")
        conn.execute("RESET session_replication_role")
        conn.execute("VACUUM ANALYZE inventory_ledger")
        conn.execute("VACUUM ANALYZE inventory_balances")
        _mark(conn, "big", _big_params(p), time.perf_counter() - started)
    log(f"scale: {BIG_SCHEMA} built in {time.perf_counter() - started:.0f}s")


def build_fleet(url: str, p: Params, log) -> None:
    from tenants.clone import template_current, template_refresh
    from tenants.models import Organization
    from tenants.services import organization_create

    if template_current() is None:
        template_refresh()
    started = time.perf_counter()
    have = set(
        Organization.objects.filter(slug__startswith=FLEET_PREFIX).values_list("slug", flat=True)
    )
    added = 0
    for n in range(1, p.organisations + 1):
        slug = f"{FLEET_PREFIX}{n:05d}"
        if slug not in have:
            organization_create(slug=slug, name=f"Scale fleet {n}")
            added += 1
            if added % 200 == 0:
                log(f"scale: {added} organisations copied ({time.perf_counter() - started:.0f}s)")
    with psycopg.connect(url, autocommit=True) as conn:
        _mark(conn, "fleet", {"organisations": p.organisations}, time.perf_counter() - started)
    log(f"scale: fleet of {p.organisations} ({added} new) in {time.perf_counter() - started:.0f}s")


def import_csv_path(p: Params) -> Path:
    # v2: each row its own occurred_at, as an export of real movements has (the first file gave
    # every row the same one)
    return BASE_DIR / "var" / "bench" / f"scale_import_{p.import_rows}_v2.csv"


def build_import_file(p: Params, log) -> Path:
    """The import file: import_rows rows over 2,000 SKUs x 10 locations (created by the first
    import), receipts and issues, one second apart."""
    from datetime import UTC, datetime, timedelta

    path = import_csv_path(p)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write("sku,unit,location,qty,kind,occurred_at,reference\n")
        start = datetime(2024, 1, 1, tzinfo=UTC)
        for r in range(p.import_rows):
            qty, kind = ("-1.5", "issue") if r % 10 < 4 else ("2.25", "receipt")
            at = (start + timedelta(seconds=r)).strftime("%Y-%m-%dT%H:%M:%SZ")
            f.write(f"IMP-{(r * 7) % 2000:05d},ea,WH-{r % 10:02d},{qty},{kind},{at},r{r}\n")
    tmp.rename(path)
    log(f"scale: import file {path.name} written")
    return path


def build(url: str, p: Params, rebuild: bool, log) -> None:
    from django.core.management import call_command

    from tenants.services import organization_create, public_tenant_ensure

    with psycopg.connect(url, autocommit=True) as conn:
        if rebuild:
            for part in ("big", "fleet"):
                _unmark(conn, part)
        big_ok = _built(conn, "big", _big_params(p))
        fleet_ok = _built(conn, "fleet", {"organisations": p.organisations})
    if not (big_ok and fleet_ok):
        call_command("migrate_schemas", executor="standard", interactive=False, verbosity=0)
    public_tenant_ensure()
    organization_create(slug=IMPORT_SLUG, name="Scale: import target")
    if big_ok:
        log(f"scale: {BIG_SCHEMA} reused (built earlier with the same parameters)")
    else:
        build_big(url, p, log)
    if fleet_ok:
        log(f"scale: fleet of {p.organisations} reused")
    else:
        if rebuild or p.organisations < _fleet_count():
            _fleet_drop()
        build_fleet(url, p, log)
    build_import_file(p, log)


def _fleet_count() -> int:
    from tenants.models import Organization

    return Organization.objects.filter(slug__startswith=FLEET_PREFIX).count()


def _fleet_drop() -> None:
    from django.db import connection

    from tenants.models import Domain, Organization

    orgs = list(Organization.objects.filter(slug__startswith=FLEET_PREFIX))
    with connection.cursor() as cursor:
        for org in orgs:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{org.schema_name}" CASCADE')
    Domain.objects.filter(tenant__in=orgs).delete()
    Organization.objects.filter(pk__in=[o.pk for o in orgs]).delete()


# --- measurements -------------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return round(1000 * seconds, 1)


def _timed(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def _admin():
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username="bench-scale-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    return user


def history(url: str, reps: int) -> dict:
    """(1) The rarely moved item's history (10 rows, the oldest ids of the ledger): the item page
    and /api/ledger (limit 50), test client in this process, against the same query made to walk
    the primary key backwards (`item_id + 0` hides the item indexes): the plan of the issue."""
    from django.conf import settings
    from django.test import Client

    from tenants.models import Organization
    from tenants.services import api_key_issue

    org = Organization.objects.get(slug=BIG_SLUG)
    page = Client(HTTP_HOST=settings.PUBLIC_DOMAIN)
    page.force_login(_admin())
    key = api_key_issue(organization=org, label="bench scale").raw_key
    api = Client(HTTP_HOST=f"{BIG_SLUG}.{settings.BASE_DOMAIN}", headers={"X-Api-Key": key})
    sku = "SKU-000001"
    cases = {
        "item page": (page, f"/orgs/{BIG_SLUG}/items/1/"),
        "/api/ledger?item=": (api, f"/api/ledger?limit=50&item={sku}"),
        "/api/ledger?item=&location=": (api, f"/api/ledger?limit=50&item={sku}&location=LOC-001"),
    }
    out = {}
    for name, (client, path) in cases.items():
        response = client.get(path)  # warm-up
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code}")
        times = _timed(lambda c=client, p=path: c.get(p), reps)
        out[name] = {"median_ms": _ms(statistics.median(times)), "n": reps}
    with _schema_conn(url, BIG_SCHEMA) as conn:
        for name, sql in (
            ("SQL, (item_id, id) index", "item_id = 1"),
            ("SQL, primary key walked", "item_id + 0 = 1"),
        ):
            q = f"SELECT * FROM inventory_ledger WHERE {sql} ORDER BY id DESC LIMIT 50"
            conn.execute(q).fetchall()
            times = _timed(lambda q=q: conn.execute(q).fetchall(), max(3, reps // 2))
            out[name] = {"median_ms": _ms(statistics.median(times)), "n": len(times)}
    return out


INSERT_ONE = (
    "INSERT INTO inventory_ledger (item_id, location_id, lot_id, qty_canonical, kind, reference, "
    "occurred_at, recorded_at, recorded_by) "
    "VALUES (%s, %s, NULL, 1, 'adjustment', 'bench', now(), now(), '')"
)


class _Poster(threading.Thread):
    """Posts one ledger row every few ms to one key and records how long each INSERT took."""

    def __init__(self, url: str, item_id: int, location_id: int):
        super().__init__(daemon=True)
        self.url, self.key = url, (item_id, location_id)
        self.waits: list[tuple[float, float]] = []  # (started, seconds)
        self.stop = threading.Event()

    def run(self) -> None:
        with _schema_conn(self.url, BIG_SCHEMA) as conn:
            while not self.stop.is_set():
                started = time.perf_counter()
                conn.execute(INSERT_ONE, self.key)
                self.waits.append((started, time.perf_counter() - started))
                time.sleep(0.005)

    def during(self, since: float, until: float) -> list[float]:
        return [s for t, s in self.waits if since <= t <= until]


def backfill(url: str, control_s: float = 10.0) -> dict:
    """(2) backfill_balances at 5·10^6 rows while two sessions post every 5 ms (one to a regular
    key, one to the big item): their longest INSERT, the run's duration; against the bare
    SUM GROUP BY over the ledger (what one all-at-once rebuild costs, no lock)."""
    from django_tenants.utils import schema_context

    from inventory.services.backfill import balances_backfill

    with _schema_conn(url, BIG_SCHEMA) as conn:
        started = time.perf_counter()
        conn.execute(
            "SELECT count(*) FROM (SELECT item_id, location_id, lot_id, sum(qty_canonical) "
            "FROM inventory_ledger GROUP BY 1, 2, 3) s"
        ).fetchone()
        bare = time.perf_counter() - started
    posters = [_Poster(url, BIG_ITEM + 1, 1), _Poster(url, BIG_ITEM, 2)]
    for poster in posters:
        poster.start()
    # The control: the same postings with no backfill (a commit waits for the disk too, and
    # other work on the machine stalls it now and then).
    control_from = time.perf_counter() + 0.5
    time.sleep(0.5 + control_s)
    control = sorted(w for p in posters for w in p.during(control_from, time.perf_counter()))
    # How long each locked chunk takes (the lock is held from its LOCK TABLE to its commit).
    from inventory.services import backfill as backfill_module

    locked: list[tuple[float, int, int]] = []  # (seconds, first item, items)
    original = backfill_module.balances_set_to_ledger

    def timed(*, item_lo, item_hi):
        t0 = time.perf_counter()
        try:
            return original(item_lo=item_lo, item_hi=item_hi)
        finally:
            locked.append((time.perf_counter() - t0, item_lo, item_hi - item_lo))

    backfill_module.balances_set_to_ledger = timed
    try:
        with schema_context(BIG_SCHEMA):
            started = time.perf_counter()
            result = balances_backfill()
            ended = time.perf_counter()
    finally:
        backfill_module.balances_set_to_ledger = original
    chunk_times = sorted(t for t, _, _ in locked)
    time.sleep(0.2)
    for poster in posters:
        poster.stop.set()
    for poster in posters:
        poster.join()
    regular, big = (p.during(started, ended) for p in posters)
    both = sorted(regular + big)
    with _schema_conn(url, BIG_SCHEMA) as conn:
        mismatches = conn.execute(
            "SELECT count(*) FROM (SELECT item_id, location_id, COALESCE(lot_id, 0) lot_key, "
            "sum(qty_canonical) s FROM inventory_ledger GROUP BY 1, 2, 3) l "
            "FULL JOIN inventory_balances b USING (item_id, location_id, lot_key) "
            "WHERE l.s IS DISTINCT FROM b.qty_canonical"
        ).fetchone()[0]
    return {
        "seconds": round(ended - started, 2),
        "chunks": result.chunks,
        "ledger_rows": result.ledger_rows,
        "longest_insert_ms": _ms(max(regular, default=float("nan"))),
        "longest_insert_big_item_ms": _ms(max(big, default=float("nan"))),
        "inserts_during": len(both),
        "insert_p99_ms": _ms(both[int(0.99 * (len(both) - 1))]) if both else None,
        "inserts_over_100_ms": sum(w > 0.1 for w in both),
        "heavy_items_by_key": getattr(result, "heavy_items_by_key", None),
        "locked_chunks": len(chunk_times),
        "locked_chunk_longest_ms": _ms(chunk_times[-1]) if chunk_times else None,
        "locked_chunk_p99_ms": _ms(chunk_times[int(0.99 * (len(chunk_times) - 1))])
        if chunk_times
        else None,
        "slowest_chunks": [  # (ms, first item, items)
            (_ms(t), lo, n) for t, lo, n in sorted(locked, reverse=True)[:3]
        ],
        "control_s": control_s,
        "control_longest_ms": _ms(control[-1]) if control else None,
        "control_p99_ms": _ms(control[int(0.99 * (len(control) - 1))]) if control else None,
        "bare_sum_group_by_s": round(bare, 2),
        "mismatches_after": mismatches,
    }


EXPORT_COPY = """COPY (
    SELECT i.sku, i.name, i.unit, loc.code, lot.code, b.qty_canonical, b.updated_at
      FROM inventory_balances b JOIN inventory_items i ON i.id = b.item_id
      JOIN inventory_locations loc ON loc.id = b.location_id
      LEFT JOIN inventory_lots lot ON lot.id = b.lot_id
     ORDER BY i.sku, loc.code, lot.code) TO STDOUT WITH (FORMAT csv)"""


def export(url: str, reps: int) -> dict:
    """(3) The balances CSV of the 5·10^6-row organisation (every balance row): the background
    export job's file (inventory.jobs.export, run in this process; a view over
    EXPORT_STREAM_MAX_ROWS is a 409 on the page, which offers the job), and the page's stream with
    that limit raised above the view (test client; the body read to the end), rows/s; against a
    bare COPY (SELECT … the same columns) TO STDOUT read by psycopg."""
    from django.conf import settings
    from django.test import Client, override_settings

    out = {}
    try:
        from inventory import jobs
        from inventory.services.balance_export import export_dir
    except ImportError:  # before the background export existed
        jobs = None
    if jobs is not None and hasattr(jobs, "export"):
        times, rows = [], 0
        for _ in range(reps):
            started = time.perf_counter()
            result = jobs.export(schema_name=BIG_SCHEMA, progress=lambda *a: None, query="")
            times.append(time.perf_counter() - started)
            rows = result.data["rows"]
            (export_dir(BIG_SCHEMA) / result.data["file"]).unlink(missing_ok=True)
        out["job_rows"], out["job_s"] = rows, round(statistics.median(times), 2)
        out["job_rows_per_s"] = round(rows / statistics.median(times))
    client = Client(HTTP_HOST=settings.PUBLIC_DOMAIN)
    client.force_login(_admin())
    path = f"/orgs/{BIG_SLUG}/balances.csv"
    times, rows, status = [], 0, None
    with override_settings(EXPORT_STREAM_MAX_ROWS=10**9):
        for _ in range(reps):
            started = time.perf_counter()
            response = client.get(path)
            status = response.status_code
            if getattr(response, "streaming", False):
                body = b"".join(response.streaming_content)
            else:
                body = response.content
            times.append(time.perf_counter() - started)
            rows = body.count(b"\n") - 1
    with _schema_conn(url, BIG_SCHEMA) as conn:
        copy_times, copy_rows = [], 0
        for _ in range(reps):
            started = time.perf_counter()
            n = 0
            with conn.cursor().copy(EXPORT_COPY) as copy:
                for chunk in copy:
                    n += bytes(chunk).count(b"\n")
            copy_times.append(time.perf_counter() - started)
            copy_rows = n
    page_s, copy_s = statistics.median(times), statistics.median(copy_times)
    return out | {
        "status": status,
        "rows": rows,
        "seconds": round(page_s, 2),
        "rows_per_s": round(rows / page_s) if rows > 0 else 0,
        "bare_copy_rows": copy_rows,
        "bare_copy_s": round(copy_s, 2),
        "bare_copy_rows_per_s": round(copy_rows / copy_s),
    }


def _import_reset(url: str, catalogue: bool) -> None:
    with _schema_conn(url, IMPORT_SCHEMA) as conn:
        _guards_off(conn)
        tables = "inventory_ledger, inventory_balances, inventory_postings"
        if catalogue:
            tables += ", inventory_lots, inventory_items, inventory_locations"
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        # Each timed write starts from a clean server: the dirty pages and WAL of the one
        # before (the --online import writes about 1 GB of WAL) flushed now, untimed, rather
        # than by a checkpoint in the middle of the next.
        conn.execute("CHECKPOINT")


def _manage(url: str, *args: str) -> tuple[float, int, str]:
    """Run manage.py in a child process: (seconds, peak RSS in MB, output)."""
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "true"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    started = time.perf_counter()
    # The peak RSS of the command alone, not this process's (bench/child_rss.py).
    status, stdout, stderr, rss = run_measured(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env
    )
    out = stdout + stderr
    seconds = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out[-3000:]}")
    return seconds, rss, out


def _import_steps(out: str) -> dict:
    """`import_ledger -v2`'s steps line, "<mode>: hash 0.10s stage 2.27s ...", as a dict."""
    [line] = [x for x in out.splitlines() if x.startswith(("bulk: hash ", "online: hash "))]
    mode, _, steps = line.partition(": ")
    words = steps.split()
    pairs = zip(words[::2], words[1::2], strict=True)
    return {"mode": mode, **{k: float(v.rstrip("s")) for k, v in pairs}}


def import_(url: str, p: Params) -> dict:
    """(4) import_ledger of import_rows rows (manage.py in a child process: wall time, peak
    RSS) into an emptied organisation; against a bare COPY of the same rows (ids resolved) into
    the same ledger (its foreign keys and balance trigger included), one transaction."""
    path = import_csv_path(p)
    # --online first: the same file written through the ledger's indexes (what a file into a
    # ledger larger than it costs), then the default, a bulk load into the emptied ledger.
    online = {}
    _import_reset(url, catalogue=True)
    online["seconds"], online["rss"], out = _manage(
        url, "import_ledger", "-v2", "--online", "--schema", IMPORT_SCHEMA, str(path)
    )
    online["steps"] = _import_steps(out)
    # The default (a bulk load; the direct path for this plain file) three times: the median
    # run's figures, and every run's seconds (the shared machine moves them by a third).
    runs = []
    for _ in range(IMPORT_RUNS):
        _import_reset(url, catalogue=True)
        seconds, rss, out = _manage(
            url, "import_ledger", "-v2", "--schema", IMPORT_SCHEMA, str(path)
        )
        runs.append((seconds, rss, _import_steps(out)))
    seconds, rss, steps = sorted(runs, key=lambda run: run[0])[len(runs) // 2]
    with _schema_conn(url, IMPORT_SCHEMA) as conn:
        imported = conn.execute("SELECT count(*) FROM inventory_ledger").fetchone()[0]
        items = dict(conn.execute("SELECT sku, id FROM inventory_items"))
        locations = dict(conn.execute("SELECT code, id FROM inventory_locations"))
    _import_reset(url, catalogue=False)
    lines = []
    with open(path) as f:
        next(f)
        for line in f:
            sku, _unit, loc, qty, kind, at, ref = line.rstrip("\n").split(",")
            lines.append(f"{items[sku]}\t{locations[loc]}\t\\N\t{qty}\t{kind}\t{ref}\t{at}\t{at}\t\n")
    data = "".join(lines).encode()
    del lines
    columns = (
        "item_id, location_id, lot_id, qty_canonical, kind, reference, occurred_at, "
        "recorded_at, recorded_by"
    )
    timings = {}
    with _schema_conn(url, IMPORT_SCHEMA) as conn:
        # The ledger itself (indexes, the deferred foreign keys checked at COMMIT, the trigger),
        # then a plain table of its columns with only a primary key (the issue's bare COPY).
        conn.execute("DROP TABLE IF EXISTS public.scale_plain_ledger")
        conn.execute(
            "CREATE UNLOGGED TABLE public.scale_plain_ledger (LIKE inventory_ledger INCLUDING "
            "DEFAULTS INCLUDING IDENTITY)"
        )
        conn.execute("ALTER TABLE public.scale_plain_ledger ADD PRIMARY KEY (id)")
        conn.execute("ALTER TABLE public.scale_plain_ledger SET LOGGED")
        for name, table in (("ledger", "inventory_ledger"), ("plain", "public.scale_plain_ledger")):
            conn.autocommit = False
            started = time.perf_counter()
            with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for k in range(0, len(data), 1 << 20):
                    copy.write(data[k : k + (1 << 20)])
            copied = time.perf_counter()
            conn.commit()
            timings[name] = (copied - started, time.perf_counter() - copied)
            conn.autocommit = True
        conn.execute("DROP TABLE public.scale_plain_ledger")
    bulk_s, bulk_mode = _bulk_copy(url, data, columns, imported)
    _import_reset(url, catalogue=True)
    bare = sum(timings["ledger"])
    plain = sum(timings["plain"])
    return {
        "rows": imported,
        "seconds": round(seconds, 1),
        "rows_per_s": round(imported / seconds),
        "peak_rss_mb": rss,
        "steps": steps,
        "runs_seconds": [round(run[0], 1) for run in runs],
        "online_seconds": round(online["seconds"], 1),
        "online_rows_per_s": round(imported / online["seconds"]),
        "online_peak_rss_mb": online["rss"],
        "online_steps": online["steps"],
        "bare_copy_s": round(bare, 1),
        "bare_copy_rows_per_s": round(imported / bare),
        "bare_copy_commit_s": round(timings["ledger"][1], 1),
        "plain_copy_s": round(plain, 1),
        "plain_copy_rows_per_s": round(imported / plain),
        "bulk_copy_s": round(bulk_s, 1),
        "bulk_copy_rows_per_s": round(imported / bulk_s),
        "bulk_copy_mode": bulk_mode,
    }


def _bulk_copy(url: str, data: bytes, columns: str, rows: int) -> tuple[float, str]:
    """The same COPY into the emptied ledger the way the import bulk loads it (indexes and
    foreign keys dropped, then rebuilt: inventory/services/ledger_bulk_load.py), one
    transaction: what any import by that path must at least pay, with no check at all."""
    from django.db import connection, transaction
    from django_tenants.utils import schema_context

    from inventory.services.ledger_bulk_load import ledger_bulk_load_finish, ledger_bulk_load_start

    _import_reset(url, catalogue=False)
    with schema_context(IMPORT_SCHEMA):
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            load = ledger_bulk_load_start(cursor, rows)
            with cursor.cursor.copy(f"COPY inventory_ledger ({columns}) FROM STDIN") as copy:
                for k in range(0, len(data), 1 << 20):
                    copy.write(data[k : k + (1 << 20)])
            if load is not None:
                ledger_bulk_load_finish(cursor, load)
        seconds = time.perf_counter() - started
    return seconds, "bulk" if load is not None else "online"


def health(url: str, requests: int) -> dict:
    """(5) /health on the 1,000-organisation server, beside the floor of the same stack: gunicorn
    (`make serve`'s) on a free port serving /health and /api/ping (bench/api.py's trivial view:
    the routing query and a JSON answer, no query of its own) at 1 client and at 16, taking
    turns in short rounds (medians over them), from wrk when installed (a Python client's
    threads take the CPU of the 2 cores from the server; the threaded client otherwise, and the
    table says which); the CPU one call costs the web workers and their PostgreSQL backends
    (their CPU time over the requests served); the queries and the relation locks of one call
    (test client in this process, inside one transaction so its locks are still held when
    counted); and the snapshot refresh the worker runs each minute (the old per-request cost).
    `requests`: the run's size, quick 20 or full 50; it sets the seconds per round (1/10th)."""
    import logging
    import secrets
    import shutil

    import psutil
    from django.conf import settings
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    from bench import api
    from operations.health import health_snapshot_refresh, pending_migrations_by_schema
    from tenants.models import ApiKey, Organization
    from tenants.services import api_key_issue

    # A migration added since the build would make every call a 503 naming 20 schemas behind:
    # measured is the server as deployed, migrated first (untimed).
    behind = [schema for schema, names in pending_migrations_by_schema().items() if names]
    if behind:
        _manage(url, "migrate_schemas", "--noinput", "-v", "0")
    orgs = Organization.objects.exclude(schema_name="public").count()
    started = time.perf_counter()
    health_snapshot_refresh()
    refresh = time.perf_counter() - started

    secret = secrets.token_urlsafe(32)
    hmac_secret = settings.API_KEY_HMAC_SECRET
    settings.API_KEY_HMAC_SECRET = secret  # the key must verify in the server's processes
    org = Organization.objects.tenants().filter(is_active=True).order_by("slug").first()
    key = api_key_issue(organization=org, label="bench scale /api/ping")
    server = None
    try:
        def queries(host: str, path: str = "/health", **headers) -> int:
            """Queries of one call, the second (the first wrote the key's last use)."""
            caller = Client(HTTP_HOST=host, **headers)
            caller.get(path)
            with CaptureQueriesContext(connection) as captured:
                caller.get(path)
            connection.set_schema_to_public()
            return len(captured)

        # The in-process /health is a 503 (no worker heartbeat, no backups here): not worth a
        # log line.
        logging.getLogger("django.request").setLevel(logging.CRITICAL)
        # localhost is the platform host (no routing query); the load below says Host: 127.0.0.1.
        with override_settings(ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "127.0.0.1"]):
            counted = {
                "queries_per_call": queries("localhost"),
                "queries_per_call_ip": queries("127.0.0.1"),
                "ping_queries_per_call_ip": queries(
                    "127.0.0.1", "/api/ping", HTTP_X_API_KEY=key.raw_key
                ),
            }
        client = Client(HTTP_HOST="localhost")
        with transaction.atomic():
            status = client.get("/health").status_code
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() "
                    "AND locktype = 'relation'"
                )
                locks = cursor.fetchone()[0]
        out = {"organisations": orgs, "status": status, "relation_locks": locks, **counted,
               "snapshot_refresh_s": round(refresh, 2), "migrated_first": len(behind)}
        tool = "wrk" if shutil.which("wrk") else "python threads"
        drive = api.run_wrk if tool == "wrk" else api.run_threads
        seconds = max(2.0, requests / 10)
        rounds = 3

        def cpu_seconds() -> float | None:
            """CPU time so far of the gunicorn workers and of the backends serving them (None when
            the database's processes are not on this machine)."""
            procs = psutil.Process(server.proc.pid).children()
            with psycopg.connect(url, autocommit=True) as conn:
                pids = [r[0] for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'inventory web' "
                    "AND datname = current_database()"
                )]
            total = 0.0
            try:
                for proc in procs + [psutil.Process(pid) for pid in pids]:
                    times = proc.cpu_times()
                    total += times.user + times.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                return None  # a backend gone meanwhile, or the server's processes not ours
            return total if pids else None

        server = api.Server(url, secret)
        server.wait_ready(key.raw_key)
        out["workers"] = server.workers()
        out["load_tool"] = tool
        cases = {
            (path, clients): api.Case(f"{path} {clients}", clients, paths=[path],
                                      auth=path != "/health")
            for clients in (1, 16) for path in ("/health", "/api/ping")
        }
        run_id = secrets.token_hex(4)
        for case in cases.values():  # warm-up: every worker's connection, imports, caches
            drive(server.port, case, key.raw_key, 1, run_id + "w")
        runs: dict[tuple, list[dict]] = {name: [] for name in cases}
        for n in range(rounds):
            order = list(cases.items())
            for name, case in order if n % 2 == 0 else order[::-1]:
                cpu_before = cpu_seconds()
                result = drive(server.port, case, key.raw_key, seconds, f"{run_id}{n}")
                cpu_after = cpu_seconds()
                if cpu_before is not None and cpu_after is not None and result["requests"]:
                    result["cpu_ms"] = 1000 * (cpu_after - cpu_before) / result["requests"]
                runs[name].append(result)
        for (path, clients), results in runs.items():
            label = "health" if path == "/health" else "ping"
            for metric in ("p50_ms", "p99_ms", "rps", "cpu_ms"):
                values = [r[metric] for r in results if metric in r]
                if values:
                    digits = 0 if metric == "rps" else 2
                    out[f"{label}_{metric}_{clients}"] = round(statistics.median(values), digits)
            out[f"{label}_errors_{clients}"] = sum(r["errors"] for r in results)
        # The names the table and earlier reports use.
        out["p50_ms_1"], out["p50_ms_16"] = out["health_p50_ms_1"], out["health_p50_ms_16"]
        out["requests_per_s_16"] = out["health_rps_16"]
        out["seconds_per_case"] = seconds * rounds
    finally:
        settings.API_KEY_HMAC_SECRET = hmac_secret
        if server is not None:
            server.stop()
        ApiKey.objects.filter(pk=key.api_key.pk).delete()
    return out


def migrate_noop(url: str, log) -> dict:
    """(5) `manage.py migrate_schemas` with nothing pending over every schema (a migration added
    since the build is applied first, untimed)."""
    from operations.migrate_executor import schemas_behind
    from tenants.models import Organization

    schemas = list(Organization.objects.values_list("schema_name", flat=True))
    behind = schemas_behind([s for s in schemas if s != "public"])
    if behind:
        log(f"scale: {len(behind)} schemas have a new migration: migrate_schemas first, untimed")
        _manage(url, "migrate_schemas", "--noinput", "-v", "0")
    seconds, _, _ = _manage(url, "migrate_schemas", "--noinput", "-v", "0")
    return {"schemas": len(schemas), "seconds": round(seconds, 1), "caught_up_first": len(behind)}


def reconcile(url: str, items: int, reps: int) -> dict:
    """(6) One full reconciliation at 5·10^6 rows, then `reps` times: 1,000 new ledger rows
    (one INSERT through the balance trigger, spread over keys) and an incremental run."""
    from django_tenants.utils import schema_context

    from reconciliation.services.run import reconciliation_run

    with schema_context(BIG_SCHEMA):
        started = time.perf_counter()
        full = reconciliation_run(mode="full", triggered_by="bench scale")
        full_s = time.perf_counter() - started
    times = []
    for rep in range(reps):
        with _schema_conn(url, BIG_SCHEMA) as conn:
            conn.execute(
                "INSERT INTO inventory_ledger (item_id, location_id, lot_id, qty_canonical, kind, "
                "reference, occurred_at, recorded_at, recorded_by) "
                "SELECT %s + (g * 37 + %s) %% %s, 1 + g %% 3, NULL, 1, 'adjustment', 'bench', "
                "now(), now(), '' FROM generate_series(1, 1000) g",
                [BIG_ITEM + 1, rep, min(1000, items - BIG_ITEM - 1)],
            )
        with schema_context(BIG_SCHEMA):
            started = time.perf_counter()
            run = reconciliation_run(mode="incremental", triggered_by="bench scale")
            times.append(time.perf_counter() - started)
    return {
        "full_s": round(full_s, 2),
        "full_keys": full.keys_checked,
        "incremental_ms": _ms(statistics.median(times)),
        "incremental_keys": run.keys_checked,
        "differences": full.differences_found + run.differences_found,
        "n": reps,
    }


# --- the run and its table ------------------------------------------------------------------


def _part(name: str, fn, log, report: dict) -> None:
    log(f"scale: measuring {name}")
    started = time.perf_counter()
    try:
        report[name] = fn()
    except Exception as err:  # one part failing still prints the others
        report[name] = {"error": f"{type(err).__name__}: {err}"[:2000]}
    log(f"scale: {name} done in {time.perf_counter() - started:.1f}s: {report[name]}")


def main(args, log) -> int:
    quick = args.quick
    p = QUICK if quick else FULL
    url = scale_database_url()
    if quick:  # its own database: a quick run never invalidates the full build
        parts = urlsplit(url)
        url = urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_quick"))
    _ensure_database(url)
    django_setup(url)
    from bench import report as bench_report

    started = time.perf_counter()
    load_start = os.getloadavg()
    log(f"scale: load average {load_start[0]:.2f} (the machine is shared: figures move with it)")
    build(url, p, args.scale_rebuild, log)
    reps = 3 if quick else 7
    report: dict = {"params": asdict(p), "quick": quick}
    parts = {
        "history": lambda: history(url, reps),
        "backfill": lambda: backfill(url, 2.0 if quick else 10.0),
        "export": lambda: export(url, 3),
        "import": lambda: import_(url, p),
        "health": lambda: health(url, 20 if quick else 50),
        "migrate": lambda: migrate_noop(url, log),
        "reconcile": lambda: reconcile(url, p.items, 3),
    }
    chosen = [x.strip() for x in (args.scale_parts or ",".join(parts)).split(",") if x.strip()]
    unknown = sorted(set(chosen) - set(parts))
    if unknown:
        raise SystemExit(f"--scale-parts: unknown {unknown}; the parts are {list(parts)}")
    for name, measure in parts.items():
        if name in chosen:
            _part(name, measure, log, report)
        else:
            report[name] = {"error": f"{NOT_RUN} (--scale-parts)"}
    with _schema_conn(url, BIG_SCHEMA) as conn:
        report["ledger_rows"] = conn.execute("SELECT count(*) FROM inventory_ledger").fetchone()[0]
    report["machine"] = bench_report.machine(url)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["loadavg"] = [load_start[0], os.getloadavg()[0]]
    from django.db import connection

    connection.close()
    JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
    path = JSON_PATH.with_name("scale-quick.json") if quick else JSON_PATH
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(table(report))
    print(f"JSON: {path.relative_to(BASE_DIR)}")
    return 0


def _n(x) -> str:
    if isinstance(x, float) and x != x:
        return "-"
    if isinstance(x, int | float):
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.1f}" if isinstance(x, float) else str(x)
    return str(x)


NOT_RUN = "not run"


def _error(figure: str, message: str, *rest) -> tuple:
    """A failed part's row: the error's first line, cut short (the whole one is in the JSON);
    a part left out by --scale-parts says so instead of ERROR."""
    if message.startswith(NOT_RUN):
        rest = tuple("-" if c == "ERROR" else c for c in rest)
    return (figure, message.splitlines()[0][:90], *rest)


def _rows(r: dict) -> list[tuple]:
    """(figure, measured, unit, floor or the issue's figure, verdict, competitor, its value)."""
    rows = r["ledger_rows"]

    def get(part, key):
        return r.get(part, {}).get(key, float("nan"))

    def err(part):
        return r.get(part, {}).get("error")

    def ok(cond) -> str:
        return "ok" if cond else "MISSES"

    out = []
    h = r.get("history", {})
    if err("history"):
        out.append(_error("(1) history", err("history"), "", "", "ERROR", "", ""))
    else:
        walk = h["SQL, primary key walked"]["median_ms"]
        idx = h["SQL, (item_id, id) index"]["median_ms"]
        out += [
            ("(1) rare item's history: item page", h["item page"]["median_ms"], "ms",
             "was 1,174 ms", "", "SQL walking the pk", walk),
            ("(1) rare item's history: /api/ledger?item=", h["/api/ledger?item="]["median_ms"],
             "ms", "was 1,353 ms", "", "SQL via (item_id, id)", idx),
            ("(1) ... /api/ledger?item=&location=",
             h["/api/ledger?item=&location="]["median_ms"], "ms", "was 43-60 ms", "", "", ""),
        ]
    if err("backfill"):
        out.append(_error("(2) backfill", err("backfill"), "", "", "ERROR", "", ""))
    else:
        b = r["backfill"]
        out += [
            ("(2) backfill: longest INSERT, regular key", b["longest_insert_ms"], "ms", "< 100 ms",
             ok(b["longest_insert_ms"] < 100), "", ""),
            ("(2) backfill: longest INSERT, big item", b["longest_insert_big_item_ms"], "ms",
             "< 100 ms", ok(b["longest_insert_big_item_ms"] < 100), "", ""),
            ("(2) backfill: INSERTs during it (p99 / over 100 ms)", b["inserts_during"], "",
             "", "", f"{b['insert_p99_ms']} ms / {b['inserts_over_100_ms']}", ""),
            ("(2) backfill: longest locked chunk", b["locked_chunk_longest_ms"], "ms", "", "",
             "p99", f"{b['locked_chunk_p99_ms']} ms"),
            (f"(2) same INSERTs, no backfill ({b['control_s']:.0f} s before): longest",
             b["control_longest_ms"], "ms", "", "", "p99", f"{b['control_p99_ms']} ms"),
            (f"(2) backfill_balances ({b['chunks']} chunks)", b["seconds"], "s", "was 22 s",
             ok(b["mismatches_after"] == 0) + f" ({b['mismatches_after']} off)",
             "bare SUM GROUP BY", f"{b['bare_sum_group_by_s']} s"),
        ]
    if err("export"):
        out.append(_error("(3) CSV export", err("export"), "", "", "ERROR", "", ""))
    else:
        e = r["export"]
        if "job_rows_per_s" in e:
            out.append(
                (f"(3) CSV export job's file, {e['job_rows']:,} balances", e["job_rows_per_s"],
                 "rows/s", ">= 50,000", ok(e["job_rows_per_s"] >= 50_000), "bare COPY TO",
                 f"{e['bare_copy_rows_per_s']:,} rows/s")
            )
        out.append(
            (f"(3) CSV export streamed by the page [{e['status']}]", e["rows_per_s"], "rows/s",
             ">= 50,000", ok(e["rows_per_s"] >= 50_000), "", "")
        )
    if err("import"):
        out.append(_error("(4) import_ledger", err("import"), "", "", "ERROR", "", ""))
    else:
        i = r["import"]
        runs = i.get("runs_seconds", [i["seconds"]])
        out += [
            (f"(4) import_ledger, {i['rows']:,} rows [{i['steps']['mode']}, median of "
             f"{len(runs)}: {' / '.join(f'{x} s' for x in runs)}]", i["rows_per_s"],
             "rows/s", ">= 100,000", ok(i["rows_per_s"] >= 100_000),
             f"bare COPY, {i['bulk_copy_mode']}-loaded", f"{i['bulk_copy_rows_per_s']:,} rows/s"),
            ("(4) import_ledger --online (through the indexes)", i["online_rows_per_s"], "rows/s",
             "", "", "bare COPY into the ledger", f"{i['bare_copy_rows_per_s']:,} rows/s"),
            ("(4) import_ledger peak RSS", i["peak_rss_mb"], "MB", "< 300 MB",
             ok(i["peak_rss_mb"] < 300), "bare COPY into a plain table",
             f"{i['plain_copy_rows_per_s']:,} rows/s"),
        ]
    if err("health"):
        out.append(_error("(5) /health", err("health"), "", "", "ERROR", "", ""))
    else:
        he = r["health"]
        n = he["organisations"]
        tool = he.get("load_tool", "python threads")

        def ping(key):  # /api/ping beside it: the same server, the same run, the same client
            value = he.get(key)
            return "-" if value is None else f"{value:,.1f} ms" if "ms" in key else f"{value:,.0f}"

        def verdict(clients):  # under 20 ms, or missed: by /health, or by the stack's floor too
            if he[f"p50_ms_{clients}"] < 20:
                return "ok"
            floor = he.get(f"ping_p50_ms_{clients}")
            return "MISSES" + (" (so does /api/ping)" if floor is not None and floor >= 20 else "")

        out += [
            (f"(5) /health p50, 1 client, {n:,} orgs [{tool}]", he["p50_ms_1"], "ms",
             "< 20 ms (was 200)", verdict(1), "/api/ping p50, 1 client",
             ping("ping_p50_ms_1")),
            (f"(5) /health p50, 16 clients [{tool}]", he["p50_ms_16"], "ms",
             "< 20 ms (was 1,540)", verdict(16), "/api/ping p50, 16 clients",
             ping("ping_p50_ms_16")),
            (f"(5) /health requests/s, 16 clients, {he['workers']} gunicorn workers",
             he["requests_per_s_16"], "req/s", "", "", "/api/ping requests/s",
             ping("ping_rps_16")),
        ]
        if "health_cpu_ms_16" in he:
            out.append(
                ("(5) /health CPU per call (web + PostgreSQL), 16 clients",
                 he["health_cpu_ms_16"], "ms", "", "", "/api/ping CPU per call",
                 ping("ping_cpu_ms_16"))
            )
        if "queries_per_call_ip" in he:
            out.append(
                (f"(5) /health queries per call, Host 127.0.0.1 (platform host "
                 f"{he['queries_per_call']})", he["queries_per_call_ip"], "queries", "", "",
                 "/api/ping queries per call", ping("ping_queries_per_call_ip"))
            )
        out.append(
            ("(5) /health relation locks per call", he["relation_locks"], "locks",
             "O(1) (was 2,026)", ok(he["relation_locks"] < 50), "snapshot refresh (worker)",
             f"{he['snapshot_refresh_s']} s")
        )
    if err("migrate"):
        out.append(_error("(5) migrate_schemas", err("migrate"), "", "", "ERROR", "", ""))
    else:
        m = r["migrate"]
        out.append(
            (f"(5) migrate_schemas, nothing pending, {m['schemas']:,} schemas", m["seconds"], "s",
             "was 200 s", "", "", "")
        )
    if err("reconcile"):
        out.append(_error("(6) reconciliation", err("reconcile"), "", "", "ERROR", "", ""))
    else:
        c = r["reconcile"]
        out.append(
            ("(6) incremental reconciliation, 1,000 new rows", c["incremental_ms"], "ms",
             "was 1,590 ms", "", "one full reconciliation", f"{c['full_s']} s")
        )
    out.insert(0, (f"ledger of {BIG_SCHEMA}", rows, "rows", "", "", "", ""))
    return out


def table(r: dict) -> str:
    header = ("figure", "measured", "unit", "floor / issue", "", "competitor", "its figure")
    lines = [tuple(_n(c) if i == 1 else str(c) for i, c in enumerate(row)) for row in _rows(r)]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

    def fmt(row):
        return "  ".join(
            c.rjust(w) if i in (1, 6) else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    m = r["machine"]
    head = (
        f"\nScale (issue 18) · PostgreSQL {m['postgresql']} · {m['cpus']} CPUs · "
        f"shared_buffers={m['settings']['shared_buffers']} · {r['seconds']}s · load average "
        f"{r['loadavg'][0]:.2f} -> {r['loadavg'][1]:.2f} (shared machine)\n"
    )
    return "\n".join([head, fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)])
