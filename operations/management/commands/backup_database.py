from django.core.management.base import BaseCommand, CommandError

from operations.models import JobRun
from operations.registry import job_runs_for_command


class Command(BaseCommand):
    help = (
        "Back up the whole database (every schema) with pg_dump -Fc into BACKUP_DIR, then prune "
        "old backups. Recorded as a job run, like a backup taken from the pages."
    )

    def handle(self, *args, **options):
        # One platform job (schema ""): its one error line is the command's error.
        runs = job_runs_for_command(self, kind=JobRun.Kind.BACKUP, schemas=[""], write_errors=False)
        if runs.errors:
            raise CommandError(runs.errors[""], returncode=1)
