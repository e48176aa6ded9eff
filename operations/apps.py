import logging

from django.apps import AppConfig

log = logging.getLogger(__name__)


class OperationsConfig(AppConfig):
    name = "operations"
    verbose_name = "Operations"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        # Declare the job kinds: backup and migrate; the restore drill and restore-org.
        from operations import backup_jobs, tasks  # noqa: F401

        post_spawn.connect(_beat_on_spawn, dispatch_uid="operations-heartbeat-on-spawn")

        from django.db.models.signals import post_migrate

        from operations.health import health_snapshot_invalidate

        # Once per migrated schema (sent per app; this app's signal is enough).
        post_migrate.connect(health_snapshot_invalidate, sender=self, dispatch_uid="health-snapshot")


def _beat_on_spawn(sender, proc_name, **kwargs) -> None:
    """Beat as soon as a worker process starts, not only at the first scheduled minute."""
    from operations.tasks import worker_heartbeat

    try:
        worker_heartbeat()
    except Exception:  # a failed beat must never stop a worker from starting
        log.exception("worker heartbeat at spawn failed")
