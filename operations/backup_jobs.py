"""The restore job kinds (registry: operations/registry.py), for the backups page's buttons."""

from __future__ import annotations

from django.conf import settings
from django_tenants.utils import schema_context

# The point-in-time kinds and schedules: base backups, WAL off-site copies (declared there).
from operations import wal_archive  # noqa: F401
from operations.drills import DrillError, restore_drill
from operations.models import BackupRecord, JobRun
from operations.registry import JobResult, Progress, job_kind_register


@job_kind_register(JobRun.Kind.RESTORE_DRILL, known_errors=(DrillError,))
def restore_drill_job(*, schema_name: str, progress: Progress, requested_by: str = "") -> JobResult:
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        drill = restore_drill(requested_by=requested_by, progress=progress)
    if not drill.ok:
        raise DrillError(drill.message)  # the run fails, as the drill did
    return JobResult(
        summary=drill.message[:200],
        data={"drill": drill.id, "seconds": drill.duration_seconds, "source": drill.source},
    )


@job_kind_register(JobRun.Kind.RESTORE_ORG, options={"backup": ""}, known_errors=(DrillError,))
def restore_org_job(*, schema_name: str, progress: Progress, backup: str = "") -> JobResult:
    from operations.restore_org import organization_restore
    from tenants.models import Organization

    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        slug = Organization.objects.get(schema_name=schema_name).slug
        record = None
        if backup:
            record = BackupRecord.objects.filter(file_name=backup, status="ok").first()
            if record is None:
                raise DrillError(f"no good backup named {backup}")
        progress(0, 1, f"restoring {slug}")
        result = organization_restore(slug=slug, backup=record)
    progress(1, 1, "done")
    return JobResult(summary=result["summary"], data={k: result[k] for k in ("slug", "schema", "backup")})
