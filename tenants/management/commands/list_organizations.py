from django.core.management.base import BaseCommand

from tenants.models import Organization
from tenants.services import organization_domain_for


class Command(BaseCommand):
    help = "List organisations: slug, id, schema, active, the hosts they answer on."

    def add_arguments(self, parser):
        parser.add_argument(
            "--ids", action="store_true", help="print 'slug id' pairs only (for scripts)"
        )

    def handle(self, *args, ids=False, **options):
        orgs = (
            Organization.objects.tenants()
            .prefetch_related("domains")
            .order_by("slug")
        )
        for org in orgs:
            if ids:
                self.stdout.write(f"{org.slug} {org.id}")
                continue
            # <slug>.<BASE_DOMAIN> routes whatever the Domain rows say; custom rows follow it.
            hosts = [organization_domain_for(org.slug), *(d.domain for d in org.domains.all())]
            domains = ", ".join(dict.fromkeys(hosts))
            state = "active" if org.is_active else "INACTIVE"
            self.stdout.write(
                f"{org.slug:<16} {org.id}  schema={org.schema_name}  {state}  {domains}"
            )
