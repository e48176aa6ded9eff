"""`python -m bench` (`make bench`): balance reads (table vs SUM over the ledger), ledger insert
throughput per balance-trigger variant and the HTTP API under load (bench/api.py), in one run, on
a separate database (inventory_bench on the embedded server, or BENCH_DATABASE_URL). See
docs/PERFORMANCE.md.

Every option can also come from the environment as BENCH_<OPTION> (e.g. BENCH_SIZES=10000,100000);
the command line wins. --quick is a smoke run of well under a minute.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, fields

# (full, quick) defaults
DEFAULTS = {
    "sizes": ("10000,100000,1000000", "10000,100000"),
    "lookups": (3000, 400),
    "pages": (300, 40),
    "budget_s": (15.0, 2.0),
    "reps": (5, 3),
    "single_rows": (3000, 400),
    "bulk_rows": (200_000, 20_000),
    "rows_per_statement": (1000, 1000),
    "items": (300, 300),
    "locations": (20, 20),
    "lot_every": (5, 5),
    "lots_per_item": (2, 2),
    "seed": (42, 42),
    "api_seconds": (12.0, 3.0),
    "api_connections": (16, 16),
    "fleet_sizes": ("10,100,1000", "10,50"),
    "fleet_cloned": (50, 10),
    "fleet_migrated": (10, 3),
    "fleet_ledger_rows": (20, 10),
    "fleet_requests": (7, 3),
}
HELP = {
    "sizes": "ledger sizes for the read benchmark, comma-separated",
    "lookups": "random single-key lookups per size (each asked of both sides)",
    "pages": "random pages of 50 items per size",
    "budget_s": "seconds at most per read measurement (at least 100 lookups / 20 pages)",
    "reps": "repetitions of each write case",
    "single_rows": "one-row transactions per repetition",
    "bulk_rows": "rows per bulk repetition (one COPY; and INSERTs of --rows-per-statement)",
    "rows_per_statement": "rows per multi-row INSERT statement",
    "items": "items in the key space",
    "locations": "locations in the key space",
    "lot_every": "every n-th item is lot-tracked (0: no lots)",
    "lots_per_item": "lots of a lot-tracked item",
    "seed": "random seed",
    "api_seconds": "seconds of load per API case, split over 3 rounds (after 2 s of warm-up)",
    "api_connections": "concurrent connections per API case (the hot-key case uses 8)",
    "fleet_sizes": "fleet sizes (organisations) for /health and the fleet page, comma-separated",
    "fleet_cloned": "organisations provisioned by copying the template (then dropped)",
    "fleet_migrated": "organisations provisioned by migrating (then dropped)",
    "fleet_ledger_rows": "ledger rows per fleet organisation",
    "fleet_requests": "requests per page and fleet size (the median is reported)",
}


@dataclass
class Config:
    sizes: list[int]
    lookups: int
    pages: int
    budget_s: float
    reps: int
    single_rows: int
    bulk_rows: int
    rows_per_statement: int
    items: int
    locations: int
    lot_every: int
    lots_per_item: int
    seed: int
    api_seconds: float
    api_connections: int
    fleet_sizes: list[int]
    fleet_cloned: int
    fleet_migrated: int
    fleet_ledger_rows: int
    fleet_requests: int


def parse_args(argv=None) -> tuple[Config, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small smoke run (< 1 minute)")
    p.add_argument(
        "--only",
        choices=["reads", "writes", "api", "fleet", "scale"],
        help="run one part only (fleet and scale run only when asked: they make 1,000 "
        "organisations; scale also a 5·10^6-row ledger, bench/scale.py)",
    )
    p.add_argument(
        "--scale-rebuild", action="store_true", help="scale: build its database again"
    )
    p.add_argument(
        "--scale-parts",
        help="scale: measure only these parts, comma-separated (history, backfill, export, "
        "import, health, migrate, reconcile); the others' rows say 'not run'",
    )
    for name in DEFAULTS:
        p.add_argument("--" + name.replace("_", "-"), dest=name, help=HELP[name])
    args = p.parse_args(argv)
    quick = args.quick or os.environ.get("BENCH_QUICK", "") in ("1", "true", "yes")
    values = {}
    for f in fields(Config):
        raw = getattr(args, f.name) or os.environ.get("BENCH_" + f.name.upper())
        if raw is None:
            raw = DEFAULTS[f.name][1 if quick else 0]
        if f.name in ("sizes", "fleet_sizes"):
            values[f.name] = [int(float(s)) for s in str(raw).split(",") if s.strip()]
        elif f.name in ("budget_s", "api_seconds"):
            values[f.name] = float(raw)
        else:
            values[f.name] = int(float(raw))
    args.quick = quick
    return Config(**values), args


def main(argv=None) -> int:
    cfg, args = parse_args(argv)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    if args.only == "scale":  # its own database, built once and reused (bench/scale.py)
        from bench import scale

        return scale.main(args, log)

    from bench import api, db, fleet, reads, report, writes

    url = db.bench_database_url()
    log("preparing the bench database (migrate_schemas, bench organisations)")
    db.prepare_schemas(url)
    meta = {"machine": report.machine(url), "config": vars(cfg), "quick": args.quick}
    meta["loadavg_start"] = os.getloadavg()
    log(f"load average {meta['loadavg_start'][0]:.2f} (other work on the machine skews results)")

    results = []
    if args.only in (None, "reads"):
        results += reads.run(url, cfg, log)
    if args.only in (None, "writes"):
        results += writes.run(url, cfg, log)
    api_report = None
    if args.only in (None, "api"):
        api_report = api.run(
            url, seconds=cfg.api_seconds, connections=cfg.api_connections, log=log
        )
    fleet_report = fleet.run(cfg, log) if args.only == "fleet" else None
    meta["seconds"] = round(time.perf_counter() - started, 1)
    meta["loadavg_end"] = os.getloadavg()

    m = meta["machine"]
    print(
        f"\nPostgreSQL {m['postgresql']} · {m['cpus']} CPUs ({m['cpu']}) · "
        f"synchronous_commit={m['settings']['synchronous_commit']} · "
        f"shared_buffers={m['settings']['shared_buffers']} · {meta['seconds']}s · "
        f"load average {meta['loadavg_start'][0]:.2f} at start\n"
    )
    if results:
        print(report.table(results))
        print(
            "\nreads: ratio = median / median of the balances table (same keys); "
            "writes: ratio = median rows/s / no trigger."
        )
        path = report.write_json(results, meta)
        print(f"JSON: {path.relative_to(db.BASE_DIR)}")
    if api_report is not None:
        print(("\n" if results else "") + api.table(api_report))
        print(f"JSON: {api.JSON_PATH.relative_to(db.BASE_DIR)}")
    if fleet_report is not None:
        print(fleet.table(fleet_report))
        print(f"JSON: {fleet.JSON_PATH.relative_to(db.BASE_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
