from pathlib import Path

from django.core.management.base import CommandError
from django_tenants.utils import schema_context

from inventory.management.commands._base import TenantCommand
from inventory.services.errors import ValidationFailed
from inventory.services.importer import ledger_import_csv


class Command(TenantCommand):
    help = (
        "Import ledger history from CSV into one tenant: columns sku, location, qty, kind (required) and "
        "item_name, unit, location_name, site, lot, lot_expires_on, reference, occurred_at. All or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--schema", required=True, help="the tenant schema to import into")
        parser.add_argument("file", help="CSV file (UTF-8, header row)")

    def handle(self, *args, schema, file, **options):
        [schema] = self.schemas(schema)
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {file}")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as err:
            raise CommandError(f"{file} is not UTF-8 text: {err}") from None
        try:
            with schema_context(schema):
                result = ledger_import_csv(text=text, source=path.name)
        except ValidationFailed as err:
            for where, messages in err.fields.items():
                for message in messages:
                    self.stderr.write(f"{where}: {message}")
            raise CommandError(err.message) from None
        self.stdout.write(
            f"{schema}: imported {result.rows} ledger rows ({result.items_created} items, "
            f"{result.locations_created} locations, {result.lots_created} lots created) in {result.seconds:.2f}s. "
            "Balances were updated by the trigger; run backfill_balances if the balance table was added after."
        )
