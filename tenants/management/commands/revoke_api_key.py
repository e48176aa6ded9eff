from django.core.management.base import BaseCommand, CommandError

from tenants.models import ApiKey
from tenants.services import api_key_revoke, parse_api_key


class Command(BaseCommand):
    help = "Revoke an API key, given its prefix (shown in listings) or the whole key."

    def add_arguments(self, parser):
        parser.add_argument("--prefix", help="the 12-character prefix")
        parser.add_argument("--key", help="the whole key")

    def handle(self, *args, prefix=None, key=None, **options):
        if bool(prefix) == bool(key):
            raise CommandError("Give exactly one of --prefix or --key.")
        if key:
            prefix = parse_api_key(key)
            if prefix is None:
                raise CommandError("That is not a well-formed API key (ie_<prefix>_<secret>).")
        api_key = ApiKey.objects.filter(prefix=prefix).select_related("organization").first()
        if api_key is None:
            raise CommandError(f"No API key with prefix {prefix!r}.")
        already = api_key.revoked_at is not None
        api_key_revoke(api_key=api_key)
        state = "was already revoked" if already else "revoked"
        self.stdout.write(f"Key {prefix} ({api_key.label}) of {api_key.organization.slug} {state}.")
