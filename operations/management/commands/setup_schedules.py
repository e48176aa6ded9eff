"""Create or update the django-q2 schedules. Idempotent: schedules are keyed by name."""

from django.core.management.base import BaseCommand

from operations.schedules import schedules_ensure


class Command(BaseCommand):
    help = "Create or update the background job schedules (idempotent)."

    def handle(self, *args, **options):
        for name, created in schedules_ensure():
            self.stdout.write(f"{'created' if created else 'up to date'}: {name}")
