from django.core.management.base import BaseCommand, CommandError

from operations.drills import drill_job_run
from operations.jobs import JobAlreadyRunning, job_run_create
from operations.models import JobRun, RestoreDrill


class Command(BaseCommand):
    help = (
        "Restore the newest backup (its off-site copy when there is one) into a scratch database, "
        "run validate_migration there, compare each organisation's ledger rows and balance "
        "totals with what the backup recorded, drop the scratch database. Exit 1 on failure."
    )

    def handle(self, *args, **options):
        import getpass

        try:
            who = f"cli:{getpass.getuser()}"
        except Exception:  # no user name in some containers
            who = "cli"
        try:
            job = job_run_create(kind=JobRun.Kind.RESTORE_DRILL, requested_by=who)
        except JobAlreadyRunning as err:
            raise CommandError(str(err)) from None
        try:
            drill_job_run(job.id)
        except Exception:
            pass  # recorded on the drill and the job; reported below
        drill = RestoreDrill.objects.order_by("-started_at").first()
        if drill is None or not drill.ok:
            message = drill.message if drill else "no drill recorded"
            raise CommandError(f"❌ restore drill failed (job {job.id}): {message}", returncode=1)
        self.stdout.write(f"✅ {drill.message} in {drill.duration_seconds:.1f}s (job {job.id})")
