from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants.services import organization_create


class Command(BaseCommand):
    help = (
        "Create an organisation: its schema (a copy of the migrated template, or every tenant "
        "migration with --migrate) and <slug>.<BASE_DOMAIN>. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--migrate",
            action="store_true",
            help="run every tenant migration instead of copying the template",
        )

    def handle(self, *args, slug, name, migrate=False, **options):
        try:
            org, created = organization_create(slug=slug, name=name, clone=not migrate)
        except ValidationError as err:
            raise CommandError("; ".join(err.messages)) from None
        verb = "Created" if created else "Already exists:"
        self.stdout.write(f"{verb} organisation {org.slug} (id {org.id}, schema {org.schema_name})")
