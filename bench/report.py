"""The printed table and var/bench/latest.json."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench.db import BASE_DIR

JSON_PATH = BASE_DIR / "var" / "bench" / "latest.json"


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def table(results: list[dict]) -> str:
    header = ("what", "variant", "size", "n", "median", "p95", "unit", "ratio")
    lines = []
    for r in results:
        ratio = r["ratio"]
        if r["section"] == "read":
            ratio_s = "1.00" if r["variant"] == "balances table" else f"{ratio:,.1f}x"
            size = f"{r['size']:,} ledger rows"
        else:
            ratio_s = f"{ratio:.2f}"
            size = f"{r['size']:,} rows"
        lines.append(
            (
                r["what"],
                r["variant"],
                size,
                str(r["n"]),
                _num(r["median"]),
                _num(r["p95"]) if "p95" in r else "",
                r["unit"],
                ratio_s,
            )
        )
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    right = {2, 3, 4, 5, 7}

    def fmt(row):
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    out = [fmt(header), fmt(["-" * w for w in widths])]
    prev = None
    for r, row in zip(results, lines, strict=True):
        key = (r["section"], r["what"], r["size"])
        if prev is not None and key != prev:
            out.append("")
        prev = key
        out.append(fmt(row))
    return "\n".join(out)


def machine(url: str) -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with psycopg.connect(url) as conn:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]
            for name in ("shared_buffers", "synchronous_commit", "fsync", "wal_level", "jit")
        }
        version = conn.execute("SHOW server_version").fetchone()[0]
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "postgresql": version,
        "settings": settings,
    }


def write_json(results: list[dict], meta: dict, path: Path = JSON_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), **meta}
    doc["results"] = results
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return path
