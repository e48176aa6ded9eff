"""B. Ledger insert throughput per balance-trigger variant: none, row-level, statement-level (the
project's), statement-level with static SQL, `policy` (the project's trigger with the no-negative
stock policy on: the same upsert RETURNING each new balance, checked against the delta); and, for
reference, `bare`: the ledger's columns without its foreign keys and secondary indexes.

Every key starts with one large opening receipt (untimed, every variant alike), so no random
issue is refused under `policy`, and the timed statements update existing balances.

Every repetition starts from an empty ledger and balance table (TRUNCATE) and inserts the same
pre-generated random rows; the variants take turns within each repetition, so drift on the
machine hits them alike. Only the database calls are timed.
"""

from __future__ import annotations

import random
import statistics
import time

from bench import db

VARIANTS = [*db.WRITE_SCHEMAS, "bare"]  # none, row, statement, statement-static, policy, bare


def _single(conn, rows) -> float:
    """One INSERT per transaction (autocommit: each statement commits)."""
    sql = db.SINGLE_INSERT_SQL
    with conn.cursor() as cur:
        t0 = time.perf_counter()
        for params in rows:
            cur.execute(sql, params)
        return time.perf_counter() - t0


def _copy(conn, chunks) -> float:
    t0 = time.perf_counter()
    db.copy_rows(conn, chunks)
    return time.perf_counter() - t0


def _multirow(conn, statements) -> float:
    """Multi-row INSERT statements, each its own transaction."""
    with conn.cursor() as cur:
        t0 = time.perf_counter()
        for stmt in statements:
            cur.execute(stmt)
        return time.perf_counter() - t0


def _check_balances(conn, variant: str) -> None:
    """After a run, the balances must equal the ledger sums (or be empty without a trigger)."""
    wrong = conn.execute(
        """SELECT count(*) FROM (
               SELECT item_id, location_id, COALESCE(lot_id, 0) AS k, sum(qty_canonical) AS q
                 FROM inventory_ledger GROUP BY 1, 2, 3) l
           FULL JOIN inventory_balances b
                  ON (b.item_id, b.location_id, b.lot_key) = (l.item_id, l.location_id, l.k)
          WHERE b.qty_canonical IS DISTINCT FROM l.q"""
    ).fetchone()[0]
    count = conn.execute("SELECT count(*) FROM inventory_balances").fetchone()[0]
    if variant in ("none", "bare") and count:
        raise AssertionError("balances written without a trigger")
    if variant not in ("none", "bare") and wrong:
        raise AssertionError(f"{variant}: {wrong} balances differ from the ledger sums")


def run(url: str, cfg, log) -> list[dict]:
    conns = {}
    keyspaces = {}
    for variant, schema in db.WRITE_SCHEMAS.items():
        conn = db.connect(url, schema)
        db.configure_variant(conn, schema, variant)
        keyspaces[variant] = db.load_key_space(
            conn, cfg.items, cfg.locations, cfg.lot_every, cfg.lots_per_item
        )
        conns[variant] = conn
    db.create_bare(conns["none"])
    conns["bare"] = db.connect(url, db.BARE_SCHEMA)
    # Same ids in every schema (fresh identities), so one set of rows serves all variants.
    keys = keyspaces["none"].keys
    assert all(ks.keys == keys for ks in keyspaces.values())
    log(f"writes: {len(keys)} keys; {cfg.reps} repetitions")

    rng = random.Random(cfg.seed)
    single_rows = db.random_rows(rng, keys, cfg.single_rows)
    bulk_rows = db.random_rows(rng, keys, cfg.bulk_rows)
    chunks = db.copy_chunks(bulk_rows)
    opening = db.copy_chunks(db.opening_rows(keys))
    statements = db.multirow_statements(bulk_rows, cfg.rows_per_statement)
    cases = [
        ("single-row INSERT txns", cfg.single_rows, lambda c: _single(c, single_rows)),
        ("COPY, one statement", cfg.bulk_rows, lambda c: _copy(c, chunks)),
        (
            f"INSERT, {cfg.rows_per_statement} rows/statement",
            cfg.bulk_rows,
            lambda c: _multirow(c, statements),
        ),
    ]

    results = []
    for what, n_rows, fn in cases:
        rates = {v: [] for v in VARIANTS}
        for rep in range(cfg.reps):
            order = VARIANTS if rep % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                conn = conns[variant]
                db.truncate_ledger(conn)
                db.copy_rows(conn, opening)  # untimed: every key starts with stock
                db.checkpoint(conn)
                rates[variant].append(n_rows / fn(conn))
                if rep == 0:
                    _check_balances(conn, variant)
            log(
                f"  {what} rep {rep + 1}: "
                + ", ".join(f"{v} {rates[v][-1]:,.0f}/s" for v in VARIANTS)
            )
        base = statistics.median(rates["none"])
        for variant in VARIANTS:
            med = statistics.median(rates[variant])
            results.append(
                {
                    "section": "write",
                    "what": what,
                    "variant": variant,
                    "size": n_rows,
                    "n": cfg.reps,
                    "unit": "rows/s",
                    "median": med,
                    "min": min(rates[variant]),
                    "max": max(rates[variant]),
                    "samples": rates[variant],
                    "ratio": med / base,
                }
            )
    for conn in conns.values():
        db.truncate_ledger(conn)
        conn.close()
    return results
