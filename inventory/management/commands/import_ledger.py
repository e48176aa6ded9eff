from pathlib import Path

from django.core.management.base import CommandError
from django_tenants.utils import schema_context

from inventory.services.errors import InventoryError
from inventory.services.importer import NotUtf8, ledger_import_csv
from tenants.management.base import TenantCommand


class Command(TenantCommand):
    help = (
        "Import ledger history from CSV into one tenant: columns sku, location, qty, kind (required) and "
        "item_name, unit, location_name, site, lot, lot_expires_on, reference, occurred_at. All or nothing; "
        "the same file (by SHA-256, or --batch-key) is imported once unless --force."
    )
    # Django's system checks (URLs, models, templates: 0.4-0.5 s here) are for developing the
    # project, not for importing into it; `make test` and `manage.py check` run them.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--schema", required=True, help="the tenant schema to import into")
        parser.add_argument(
            "--batch-key",
            help="a name for this import (e.g. old-system-2026-11); a second import with the same "
            "key is refused. Default: the file's SHA-256",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="import even if this file or batch key was imported before (adds its rows again)",
        )
        parser.add_argument(
            "--online",
            action="store_true",
            help="never bulk load: write through the ledger's indexes, without locking it against "
            "this organisation's readers and postings (slower for a large file into a small ledger)",
        )
        parser.add_argument("file", help="CSV file (UTF-8, header row)")

    def handle(self, *args, schema, file, batch_key=None, force=False, online=False, **options):
        [schema] = self.schemas(schema)
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {file}")
        try:
            with schema_context(schema):
                # The file is streamed (bounded memory whatever its size), never read whole.
                result = ledger_import_csv(
                    path=path, source=path.name, batch_key=batch_key, force=force, online=online
                )
        except NotUtf8 as err:
            raise CommandError(f"{file} is not UTF-8 text: {err}") from None
        except InventoryError as err:
            # One message with every "line N, column C: problem", then the summary: the
            # CommandError is what the operator sees (and exit status 1).
            lines = [f"{where}: {m}" for where, messages in err.fields.items() for m in messages]
            if err.fields.keys() <= {"file", "batch_key"}:
                lines = []
            raise CommandError("\n".join([*lines, err.message])) from None
        self.stdout.write(
            f"{schema}: imported {result.rows} ledger rows ({result.items_created} items, "
            f"{result.locations_created} locations, {result.lots_created} lots created) in {result.seconds:.2f}s "
            f"as posting {result.posting_id} (sha256 {result.sha256[:12]}…). "
            "Balances were updated by the trigger; run backfill_balances if the balance table was added after."
        )
        if options.get("verbosity", 1) >= 2:
            steps = " ".join(f"{k} {v:.2f}s" for k, v in result.steps.items())
            self.stdout.write(f"{result.mode}: {steps}")
