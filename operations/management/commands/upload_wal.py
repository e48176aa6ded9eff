from django.core.management.base import BaseCommand, CommandError

from operations.offsite import OffsiteError
from operations.wal_archive import wal_upload


class Command(BaseCommand):
    help = (
        "Copy the archived WAL files not yet off-site to the bucket (encrypted, read back and "
        "compared), then remove local ones older than the oldest base backup kept (the every-"
        "minute 'wal off-site copy' schedule does this)."
    )

    def handle(self, *args, **options):
        try:
            result = wal_upload()
        except OffsiteError as err:
            raise CommandError(str(err)) from None
        self.stdout.write(str(result))
