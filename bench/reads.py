"""A. Balance reads: the trigger-kept inventory_balances table vs SUM over inventory_ledger.

One schema (`bench`, with the real statement-level trigger) grows through the sizes: random rows
are COPYed in until the ledger holds each size, then VACUUM ANALYZE, then the timed queries.
Each random key (or page) is asked of both sides in turn, alternating which goes first, so the
two medians see the same keys and the same machine state; `SELECT 1` runs in the same rotation as
the floor (one round trip). Time is per query, client side: send, execute, fetch.
"""

from __future__ import annotations

import random
import statistics
import time

from bench import db

LOOKUP_TABLE = (
    "SELECT qty_canonical FROM inventory_balances "
    "WHERE item_id = %s AND location_id = %s AND lot_key = %s"
)
LOOKUP_LEDGER = (
    "SELECT sum(qty_canonical) FROM inventory_ledger "
    "WHERE item_id = %s AND location_id = %s AND lot_id IS NOT DISTINCT FROM %s"
)
PAGE_TABLE = (
    "SELECT item_id, sum(qty_canonical) FROM inventory_balances "
    "WHERE item_id = ANY(%s) GROUP BY item_id"
)
PAGE_LEDGER = (
    "SELECT item_id, sum(qty_canonical) FROM inventory_ledger "
    "WHERE item_id = ANY(%s) GROUP BY item_id"
)
# The floor: one round trip to the server that does (almost) nothing.
ROUND_TRIP = "SELECT 1"
LOAD_ROWS_PER_COPY = 100_000


def _time_queries(conn, sqls, params, budget_s: float, min_n: int) -> list[list[float]]:
    """Per-query times (µs) of each of `sqls`, run in turn (rotating which goes first) for each
    tuple of params in `params`; stops at the time budget once min_n rounds are done."""
    times = [[] for _ in sqls]
    warm = max(3, min(50, len(params) // 20))
    with conn.cursor() as cur:
        for row in params[:warm]:
            for sql, p in zip(sqls, row, strict=True):
                cur.execute(sql, p).fetchall()
        start = time.perf_counter()
        for n, row in enumerate(params[warm:]):
            for k in range(len(sqls)):
                i = (n + k) % len(sqls)
                t0 = time.perf_counter_ns()
                cur.execute(sqls[i], row[i])
                cur.fetchall()
                times[i].append((time.perf_counter_ns() - t0) / 1000)
            if n + 1 >= min_n and time.perf_counter() - start > budget_s:
                break
    return times


def _plan(conn, sql, params) -> str:
    """The plan's node chain, e.g. 'Aggregate > Index Scan on inventory_ledger'."""
    plan = conn.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()[0][0]["Plan"]
    nodes = []
    while plan:
        name = plan["Node Type"]
        if "Index Name" in plan:
            name += f" {plan['Index Name']}"
        elif "Relation Name" in plan:
            name += f" {plan['Relation Name']}"
        nodes.append(name)
        plan = (plan.get("Plans") or [None])[0]
    return " > ".join(nodes)


def _p95(xs) -> float:
    return statistics.quantiles(xs, n=20)[-1] if len(xs) >= 20 else max(xs)


def _rows(what, size, variants, times, plans) -> list[dict]:
    """Result rows; the ratio is to the first variant (the balances table)."""
    base = statistics.median(times[0])
    out = []
    for variant, xs, plan in zip(variants, times, plans, strict=True):
        med = statistics.median(xs)
        out.append(
            {
                "section": "read",
                "what": what,
                "variant": variant,
                "size": size,
                "n": len(xs),
                "unit": "µs/query",
                "median": med,
                "p95": _p95(xs),
                "ratio": med / base,
                "plan": plan,
            }
        )
    return out


# Balances as of an instant (issue 14): the API's statement (inventory/selectors.py: current
# balance minus the movements that occurred after T) against the plain SUM over the ledger up
# to T, for one item's balances (the item page) and for the first page of 50 balances.
AS_OF_ITEM_LEDGER = (
    "SELECT item_id, location_id, lot_id, sum(qty_canonical) FROM inventory_ledger "
    "WHERE item_id = %s AND occurred_at <= %s GROUP BY 1, 2, 3"
)
AS_OF_PAGE_LEDGER = (
    "SELECT item_id, location_id, COALESCE(lot_id, 0), sum(qty_canonical) FROM inventory_ledger "
    "WHERE occurred_at <= %s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 LIMIT 50"
)


def _as_of_sql(by_item: bool) -> str:
    from inventory.selectors import _BALANCES_AS_OF_SQL, _EXISTED_SQL

    if by_item:
        return _BALANCES_AS_OF_SQL.format(
            after_where=" AND item_id = %s", where=_EXISTED_SQL + " AND b.item_id = %s"
        )
    return _BALANCES_AS_OF_SQL.format(after_where="", where=_EXISTED_SQL) + (
        " ORDER BY b.id LIMIT 50"
    )


def _as_of(conn, cfg, size: int, item_ids, rng, results) -> int:
    """As-of reads at T with 0.1% and 10% of the ledger after it; returns the rows added."""
    from datetime import timedelta

    item_sql, page_sql = _as_of_sql(True), _as_of_sql(False)
    added = 0
    for share in (0.001, 0.1):
        at = db.BASE_TIME + timedelta(seconds=int(size * (1 - share)))
        params = []
        for _ in range(max(20, cfg.pages)):
            item = item_ids[rng.randrange(len(item_ids))]
            params.append(((at, item, at, item), (item, at)))
        times = _time_queries(conn, (item_sql, AS_OF_ITEM_LEDGER), params, cfg.budget_s, 20)
        plans = [
            _plan(conn, q, p) for q, p in zip((item_sql, AS_OF_ITEM_LEDGER), params[0], strict=True)
        ]
        what = f"as of T, one item ({share:.1%} after T)"
        results += _rows(what, size, ("balances - after T", "SUM(ledger <= T)"), times, plans)
        page_params = [((at, at), (at,))] * max(10, cfg.pages // 10)
        times = _time_queries(conn, (page_sql, AS_OF_PAGE_LEDGER), page_params, cfg.budget_s, 10)
        plans = [
            _plan(conn, q, p)
            for q, p in zip((page_sql, AS_OF_PAGE_LEDGER), page_params[0], strict=True)
        ]
        what = f"as of T, 50 balances ({share:.1%} after T)"
        results += _rows(what, size, ("balances - after T", "SUM(ledger <= T)"), times, plans)
        added += 4
    return added


def _check(conn, keys, rng) -> None:
    for item_id, loc_id, lot_id in rng.sample(keys, min(50, len(keys))):
        table = conn.execute(LOOKUP_TABLE, (item_id, loc_id, lot_id or 0)).fetchone()
        ledger = conn.execute(LOOKUP_LEDGER, (item_id, loc_id, lot_id)).fetchone()[0]
        if (table[0] if table else None) != ledger:
            raise AssertionError(f"balance {table} != ledger sum {ledger} for {item_id, loc_id}")


def run(url: str, cfg, log) -> list[dict]:
    schema = db.READ_SCHEMA
    conn = db.connect(url, schema)
    db.configure_variant(conn, schema, "statement")
    space = db.load_key_space(conn, cfg.items, cfg.locations, cfg.lot_every, cfg.lots_per_item)
    keys, item_ids = space.keys, space.item_ids
    page = min(50, len(item_ids))
    rng = random.Random(cfg.seed + 1)
    log(f"reads: {len(keys)} keys, {len(item_ids)} items, pages of {page} items")

    results = []
    loaded = 0
    for size in sorted(cfg.sizes):
        t0 = time.perf_counter()
        while loaded < size:
            n = min(LOAD_ROWS_PER_COPY, size - loaded)
            # occurred_at one second apart, in load order (the as-of reads need spread times)
            db.copy_rows(conn, db.copy_chunks(db.random_rows(rng, keys, n), first=loaded))
            loaded += n
        conn.execute("VACUUM ANALYZE inventory_ledger, inventory_balances")
        db.checkpoint(conn)
        _check(conn, keys, rng)
        log(f"  ledger at {size:,} rows (loaded in {time.perf_counter() - t0:.1f}s)")

        lookups = []
        for _ in range(cfg.lookups):
            item_id, loc_id, lot_id = keys[rng.randrange(len(keys))]
            lookups.append(((item_id, loc_id, lot_id or 0), (item_id, loc_id, lot_id), ()))
        sqls = (LOOKUP_TABLE, LOOKUP_LEDGER, ROUND_TRIP)
        times = _time_queries(conn, sqls, lookups, cfg.budget_s, 100)
        plans = [_plan(conn, q, p) for q, p in zip(sqls, lookups[0], strict=True)]
        variants = ("balances table", "SUM(ledger)", "SELECT 1 (floor)")
        results += _rows("balance lookup (1 key)", size, variants, times, plans)

        pages = []
        for _ in range(cfg.pages):
            start = rng.randrange(len(item_ids) - page + 1)
            ids = item_ids[start : start + page]
            pages.append(((ids,), (ids,)))
        sqls = (PAGE_TABLE, PAGE_LEDGER)
        times = _time_queries(conn, sqls, pages, cfg.budget_s, 20)
        plans = [_plan(conn, q, p) for q, p in zip(sqls, pages[0], strict=True)]
        what = f"on-hand, page of {page} items"
        results += _rows(what, size, ("balances table", "SUM(ledger)"), times, plans)
        n_as_of = _as_of(conn, cfg, size, item_ids, rng, results)
        for r in results[-(5 + n_as_of) :]:
            log(
                f"    {r['what']:<28} {r['variant']:<16} median {r['median']:,.0f} µs"
                f"  ({r['plan']})"
            )
    db.truncate_ledger(conn)
    conn.close()
    return results
