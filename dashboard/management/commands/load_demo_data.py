"""Demo organisations and users for `make run`. Idempotent: a second run changes nothing."""

from django.conf import settings
from django.core.management.base import BaseCommand

from tenants.models import Membership
from tenants.services import (
    membership_grant,
    organization_create,
    public_tenant_ensure,
    user_ensure,
)

DEMO_ORGS = [("acme", "Acme Corporation"), ("globex", "Globex Corporation")]
DEMO_PASSWORD = "demo-pass-2026"


class Command(BaseCommand):
    help = "Create the demo organisations (acme, globex) and users, and print the logins."

    def add_arguments(self, parser):
        parser.add_argument("--no-ledger", action="store_true", help="skip the demo ledger rows")

    def handle(self, *args, no_ledger=False, **options):
        public_tenant_ensure()
        orgs = {}
        for slug, name in DEMO_ORGS:
            orgs[slug], created = organization_create(slug=slug, name=name)
            if created:
                self.stdout.write(f"created organisation {slug}")
        admin = user_ensure(username="admin", password=DEMO_PASSWORD, is_superuser=True)
        support = user_ensure(username="support", password=DEMO_PASSWORD)
        for slug, org in orgs.items():
            owner = user_ensure(username=f"owner-{slug}", password=DEMO_PASSWORD)
            membership_grant(user=owner, organization=org, role=Membership.Role.OWNER)
            membership_grant(user=support, organization=org, role=Membership.Role.SUPPORT)
        del admin
        if not no_ledger:
            self._load_ledgers(orgs)
        self.print_logins(orgs)

    def _load_ledgers(self, orgs) -> None:
        try:
            from inventory.demo import demo_ledger_ensure
        except ImportError:  # the ledger demo arrives with the inventory services
            return
        for slug, org in orgs.items():
            summary = demo_ledger_ensure(organization=org)
            if summary:
                self.stdout.write(f"{slug}: {summary}")

    def print_logins(self, orgs) -> None:
        base = settings.BASE_DOMAIN
        self.stdout.write("")
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD})")
        self.stdout.write(f"  platform admin : admin          http://{base}:8000/login/")
        self.stdout.write(f"  support        : support        http://{base}:8000/login/")
        for slug, org in orgs.items():
            self.stdout.write(
                f"  owner of {slug:<6}: owner-{slug:<8} http://{slug}.{base}:8000/  (org id {org.id})"
            )
        self.stdout.write("")
