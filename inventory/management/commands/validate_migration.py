import json

from django.core.management.base import CommandError

from inventory.management.commands._base import TenantCommand
from inventory.services.validation import migration_sql_reapply, migration_validate


class Command(TenantCommand):
    help = "Check the balance migration in every tenant schema (tables, trigger enabled, function, indexes, append-only guard). Exit 1 on failure."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument(
            "--repair",
            action="store_true",
            help="re-run the (idempotent) migration SQL in schemas that fail, then check again",
        )

    def handle(self, *args, schema=None, json=False, repair=False, **options):
        reports = [migration_validate(schema=name) for name in self.schemas(schema)]
        if repair:
            for report in [r for r in reports if not r.ok]:
                self.stderr.write(f"{report.schema}: re-running the migration SQL")
                migration_sql_reapply(schema=report.schema)
            reports = [migration_validate(schema=r.schema) for r in reports]
        failed = [r for r in reports if not r.ok]
        if json:
            self.stdout.write(_json({"ok": not failed, "schemas": [r.as_dict() for r in reports]}))
        else:
            for report in reports:
                self.stdout.write(f"\n{report.schema}")
                for check in report.checks:
                    self.stdout.write(check.line())
            self.stdout.write("")
            if not failed:
                self.stdout.write("✅ All checks passed")
        if failed:
            count = sum(len(r.failed) for r in failed)
            raise CommandError(
                f"❌ {count} check(s) failed in {', '.join(r.schema for r in failed)}", returncode=1
            )


def _json(data) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
