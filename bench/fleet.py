"""`python -m bench --only fleet`: many organisations in the bench database.

1. Provisioning rate: organisations copied from the template (tenants/clone.py) and organisations
   migrated (clone=False), side by side; both made and then dropped again.
2. The fleet grows to each of --fleet-sizes (organisations fleet-00001…, each with a small ledger
   posted through the posting service); at each size /health and the fleet page are fetched with
   the Django test Client in this process (median ms of --fleet-requests, and their queries).
3. At the largest size, a fleet validate (migration_validate) and a fleet reconcile
   (reconciliation_run) over every fleet organisation, one after the other, with the services.

The fleet organisations stay in inventory_bench; the next run drops those beyond its first size
and grows the fleet again.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
import uuid
from decimal import Decimal

from bench.db import BASE_DIR

JSON_PATH = BASE_DIR / "var" / "bench" / "fleet.json"
FLEET_PREFIX = "fleet-"


def _slug(n: int) -> str:
    return f"{FLEET_PREFIX}{n:05d}"


def _drop(orgs) -> None:
    from django.db import connection

    from tenants.models import Domain, Organization

    with connection.cursor() as cursor:
        for org in orgs:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{org.schema_name}" CASCADE')
    Domain.objects.filter(tenant__in=orgs).delete()
    Organization.objects.filter(pk__in=[o.pk for o in orgs]).delete()


def provisioning(cloned: int, migrated: int, log) -> dict:
    from tenants.clone import template_current, template_refresh
    from tenants.services import organization_create

    if template_current() is None:
        started = time.perf_counter()
        template_refresh()
        log(f"template rebuilt in {time.perf_counter() - started:.2f}s")
    run = uuid.uuid4().hex[:6]
    # The first copy of a process reads the template's text (pg_dump): measured on its own.
    started = time.perf_counter()
    made = [organization_create(slug=f"prov-{run}-warm", name="warm-up")[0]]
    first = time.perf_counter() - started
    result = {"first_copy_s": round(first, 3)}
    for label, count, clone in (("cloned", cloned, True), ("migrated", migrated, False)):
        times = []
        for i in range(count):
            started = time.perf_counter()
            org, _ = organization_create(slug=f"prov-{run}-{label[0]}{i}", name=label, clone=clone)
            times.append(time.perf_counter() - started)
            made.append(org)
        total = sum(times)
        result[label] = {
            "organisations": count,
            "seconds": round(total, 2),
            "per_org_ms": round(1000 * statistics.median(times), 1),
            "orgs_per_s": round(count / total, 1),
        }
        log(f"provisioning {label}: {count} in {total:.2f}s ({count / total:.1f}/s)")
    _drop(made)
    return result


def _post_small_ledger(schema: str, rows: int) -> None:
    from django_tenants.utils import schema_context

    from inventory.models import Item, Location
    from inventory.services.posting import ledger_entries_create

    with schema_context(schema):
        if not Item.objects.exists():
            Item.objects.bulk_create(
                [Item(sku=f"SKU-{k}", name=f"Item {k}", unit="ea") for k in range(3)]
            )
            Location.objects.bulk_create(
                [Location(code=f"LOC-{k}", name=f"Location {k}") for k in range(2)]
            )
            ledger_entries_create(
                entries=[
                    {
                        "item": f"SKU-{k % 3}",
                        "location": f"LOC-{k % 2}",
                        "qty": "5",
                        "kind": "receipt",
                    }
                    for k in range(rows)
                ]
            )


def fleet_grow(size: int, ledger_rows: int, log) -> float:
    from tenants.models import Organization
    from tenants.services import organization_create

    fleet = Organization.objects.filter(slug__startswith=FLEET_PREFIX)
    extra = [org for org in fleet if org.slug > _slug(size)]
    if extra:  # an earlier run's larger fleet: measured at this size, not at that one
        started = time.perf_counter()
        _drop(extra)
        log(
            f"fleet: {len(extra)} organisations beyond {size} dropped in "
            f"{time.perf_counter() - started:.1f}s"
        )
    have = set(fleet.values_list("slug", flat=True))
    started = time.perf_counter()
    added = 0
    for n in range(1, size + 1):
        if _slug(n) in have:
            continue
        org, _ = organization_create(slug=_slug(n), name=f"Fleet {n}")
        _post_small_ledger(org.schema_name, ledger_rows)
        added += 1
        if added % 200 == 0:
            log(f"fleet: {added} organisations added")
    seconds = time.perf_counter() - started
    if added:
        log(f"fleet at {size}: {added} added in {seconds:.1f}s (with their ledgers)")
    return seconds


def _fleet_schemas(size: int) -> list[str]:
    from tenants.models import Organization

    slugs = [_slug(n) for n in range(1, size + 1)]
    return list(
        Organization.objects.filter(slug__in=slugs)
        .order_by("slug")
        .values_list("schema_name", flat=True)
    )


def pages(requests: int) -> dict:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from tenants.models import Organization

    User = get_user_model()
    admin, _ = User.objects.get_or_create(
        username="bench-fleet-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client(HTTP_HOST=settings.PUBLIC_DOMAIN)
    client.force_login(admin)
    out = {"organisations": Organization.objects.exclude(schema_name="public").count()}
    # A failing /health (503: the bench database has no backups) would log every request.
    logging.getLogger("django.request").setLevel(logging.CRITICAL)
    for name, path in (("health", "/health"), ("fleet_page", "/fleet/")):
        client.get(path)  # warm-up
        times, queries, status = [], None, None
        for _ in range(requests):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(path)
                times.append(time.perf_counter() - started)
            queries, status = len(captured.captured_queries), response.status_code
        out[name] = {
            "median_ms": round(1000 * statistics.median(times), 1),
            "max_ms": round(1000 * max(times), 1),
            "queries": queries,
            "status": status,
        }
        if name == "health":
            out[name]["failing"] = response.json().get("failing")
    return out


def fleet_validate(schemas: list[str]) -> dict:
    from django_tenants.utils import schema_context

    from inventory.services.validation import migration_validate

    failed = 0
    started = time.perf_counter()
    for schema in schemas:
        with schema_context(schema):
            failed += not migration_validate(schema=schema).ok
    seconds = time.perf_counter() - started
    return {"organisations": len(schemas), "seconds": round(seconds, 1), "failed": failed}


def fleet_reconcile(schemas: list[str]) -> dict:
    from django_tenants.utils import schema_context

    from reconciliation.services.run import reconciliation_run

    started = time.perf_counter()
    for schema in schemas:
        with schema_context(schema):
            reconciliation_run(triggered_by="bench", tolerance=Decimal("0"))
    seconds = time.perf_counter() - started
    return {"organisations": len(schemas), "seconds": round(seconds, 1)}


def run(cfg, log) -> dict:
    """Runs after bench.db.prepare_schemas (Django set up on the bench database)."""
    import django
    from django.db import connection

    django.setup()
    report = {"provisioning": provisioning(cfg.fleet_cloned, cfg.fleet_migrated, log)}
    report["sizes"] = []
    for size in cfg.fleet_sizes:
        grow_s = fleet_grow(size, cfg.fleet_ledger_rows, log)
        entry = {"fleet": size, "grow_s": round(grow_s, 1), **pages(cfg.fleet_requests)}
        log(
            f"at {size}: /health {entry['health']['median_ms']} ms "
            f"({entry['health']['queries']} queries), fleet page "
            f"{entry['fleet_page']['median_ms']} ms ({entry['fleet_page']['queries']} queries)"
        )
        report["sizes"].append(entry)
    schemas = _fleet_schemas(max(cfg.fleet_sizes))
    log(f"fleet validate over {len(schemas)} organisations")
    report["validate"] = fleet_validate(schemas)
    log(f"fleet reconcile over {len(schemas)} organisations")
    report["reconcile"] = fleet_reconcile(schemas)
    connection.close()
    JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(json.dumps(report, indent=2))
    return report


def table(report: dict) -> str:
    p = report["provisioning"]
    lines = [
        "provisioning      orgs  seconds  median ms/org  orgs/s",
        *(
            f"{label:<16} {p[label]['organisations']:>5} {p[label]['seconds']:>8} "
            f"{p[label]['per_org_ms']:>14} {p[label]['orgs_per_s']:>7}"
            for label in ("cloned", "migrated")
        ),
        f"(first copy of the process, reading the template: {p['first_copy_s']} s)",
        "",
        "fleet  orgs in db  /health ms (queries)  fleet page ms (queries)",
    ]
    for s in report["sizes"]:
        h, f = s["health"], s["fleet_page"]
        lines.append(
            f"{s['fleet']:>5} {s['organisations']:>11}  {h['median_ms']:>8} ({h['queries']}) "
            f"[{h['status']}]  {f['median_ms']:>12} ({f['queries']}) [{f['status']}]"
        )
    v, r = report["validate"], report["reconcile"]
    lines += [
        "",
        f"fleet validate:  {v['organisations']} organisations in {v['seconds']} s "
        f"({v['failed']} failed)",
        f"fleet reconcile: {r['organisations']} organisations in {r['seconds']} s",
    ]
    return "\n".join(lines)
