import json

from django.core.management.base import CommandError

from operations.models import JobRun
from operations.registry import job_runs_for_command
from tenants.management.base import TenantCommand


class Command(TenantCommand):
    help = (
        "Check the balance migration in every tenant schema (tables, trigger enabled, function, "
        "indexes, balances cover the ledger, append-only guard). Exit 1 on failure. Each schema is "
        "recorded as a validate job (fleet, runbook)."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument(
            "--repair",
            action="store_true",
            help="run repair_balances (put back the current objects, then backfill) in schemas "
            "that fail, then check again",
        )

    def _validate(self, schemas: list[str]) -> tuple[dict, list[str]]:
        runs = job_runs_for_command(
            self, kind=JobRun.Kind.VALIDATE, schemas=schemas, write=lambda name, result: None
        )
        return runs.results, list(runs.errors)

    def handle(self, *args, schema=None, json=False, repair=False, **options):
        schemas = self.schemas(schema)
        reports, errors = self._validate(schemas)
        if repair:
            broken = [name for name in schemas if name in errors or not reports[name]["ok"]]
            for name in broken:
                self.stderr.write(f"{name}: running repair_balances")
            job_runs_for_command(
                self,
                kind=JobRun.Kind.REPAIR,
                schemas=broken,
                write=lambda name, result: self.stderr.write(f"{name}: {result['summary']}"),
            )
            if broken:
                again, errors = self._validate(broken)
                reports.update(again)
        failed = [name for name in schemas if name in errors or not reports[name]["ok"]]
        if json:
            data = {
                "ok": not failed,
                "schemas": [_public(reports[n]) for n in schemas if n in reports],
                "errors": errors,
            }
            self.stdout.write(_json(data))
        else:
            for name in schemas:
                if name not in reports:
                    continue
                self.stdout.write(f"\n{name}")
                for check in reports[name]["checks"]:
                    mark = "✅" if check["ok"] else "❌"
                    suffix = "" if check["ok"] else f" — {check['detail']}"
                    self.stdout.write(f"{mark} {check['name']}{suffix}")
            self.stdout.write("")
            if not failed:
                self.stdout.write("✅ All checks passed")
        if failed:
            count = sum(
                len([c for c in reports[n]["checks"] if not c["ok"]]) if n in reports else 1
                for n in failed
            )
            raise CommandError(f"❌ {count} check(s) failed in {', '.join(failed)}", returncode=1)


def _public(result: dict) -> dict:
    return {k: result[k] for k in ("schema", "ok", "checks")}


def _json(data) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
