from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants.models import Organization
from tenants.services import api_key_issue


class Command(BaseCommand):
    help = "Issue an API key for an organisation. The key is printed once and never stored."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organisation slug or UUID")
        parser.add_argument("--label", required=True, help="who or what uses the key")
        parser.add_argument("--quiet", action="store_true", help="print only the key")

    def handle(self, *args, org, label, quiet, **options):
        organization = find_organization(org)
        try:
            issued = api_key_issue(organization=organization, label=label)
        except ValidationError as err:
            raise CommandError("; ".join(err.messages)) from None
        if quiet:
            self.stdout.write(issued.raw_key)
            return
        self.stdout.write(f"API key for {organization.slug} ({label}), shown only this once:")
        self.stdout.write(issued.raw_key)
        self.stdout.write(f"Revoke with: manage.py revoke_api_key --prefix {issued.api_key.prefix}")


def find_organization(reference: str) -> Organization:
    import uuid

    qs = Organization.objects.tenants()
    try:
        org = qs.filter(pk=uuid.UUID(reference)).first()
    except ValueError:
        org = qs.filter(slug=reference.lower()).first()
    if org is None:
        raise CommandError(f"No organisation {reference!r}.")
    return org
