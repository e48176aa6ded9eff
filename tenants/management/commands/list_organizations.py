from django.conf import settings
from django.core.management.base import BaseCommand

from tenants.models import Organization


class Command(BaseCommand):
    help = "List organisations: slug, id, schema, domains, active."

    def add_arguments(self, parser):
        parser.add_argument(
            "--ids", action="store_true", help="print 'slug id' pairs only (for scripts)"
        )

    def handle(self, *args, ids=False, **options):
        orgs = (
            Organization.objects.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME)
            .prefetch_related("domains")
            .order_by("slug")
        )
        for org in orgs:
            if ids:
                self.stdout.write(f"{org.slug} {org.id}")
                continue
            domains = ", ".join(d.domain for d in org.domains.all())
            state = "active" if org.is_active else "INACTIVE"
            self.stdout.write(
                f"{org.slug:<16} {org.id}  schema={org.schema_name}  {state}  {domains}"
            )
