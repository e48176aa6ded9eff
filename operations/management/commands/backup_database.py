import getpass

from django.core.management.base import BaseCommand, CommandError

from operations.jobs import JobAlreadyRunning, job_run_create
from operations.models import JobRun
from operations.tasks import backup_job_run


def _cli_user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment (some containers)
        return "cli"


class Command(BaseCommand):
    help = (
        "Back up the whole database (every schema) with pg_dump -Fc into BACKUP_DIR, then prune "
        "old backups. Recorded as a job run, like a backup taken from the pages."
    )

    def handle(self, *args, **options):
        try:
            job = job_run_create(kind=JobRun.Kind.BACKUP, requested_by=_cli_user())
        except JobAlreadyRunning as err:
            raise CommandError(str(err)) from None
        try:
            run = backup_job_run(job.id)
        except Exception as err:
            raise CommandError(f"backup failed (job {job.id}): {err}") from None
        if run.status != JobRun.Status.SUCCEEDED:
            raise CommandError(f"backup job {job.id} {run.status}: {run.error}")
        result = run.result
        self.stdout.write(
            f"backup {result['file']}: {result['size_bytes']} bytes, "
            f"sha256 {result['sha256'][:16]}…, {result['seconds']:.2f}s (job {job.id})"
        )
