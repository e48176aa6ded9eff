"""The evaluator's rules: each reads what another app records and says which alerts should be
open now (a Finding per key). Whatever is open and not found again resolves. Rules only read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, Max, Min
from django.urls import reverse
from django.utils import timezone

from operations.models import BackupCheck, BackupRecord, JobRun, WorkerHeartbeat
from reconciliation.models import Discrepancy, ReconciliationRun
from tenants.models import Organization


@dataclass(frozen=True)
class Finding:
    key: str
    title: str
    summary: str
    link: str
    since: datetime
    organization_id: int | None = None


def absolute(path: str, query: dict | None = None) -> str:
    return settings.SITE_URL + path + (f"?{urlencode(query)}" if query else "")


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")


def backup_failed() -> list[Finding]:
    """The newest finished backup failed (a backup in progress is recorded as failed with
    error 'in progress' until it ends: not a failure yet)."""
    finished = BackupRecord.objects.exclude(status=BackupRecord.Status.PRUNED).exclude(
        finished_at=None, error="in progress"
    )
    newest = finished.order_by("-started_at").first()
    if newest is None or newest.status != BackupRecord.Status.FAILED:
        return []
    last_ok = finished.filter(status=BackupRecord.Status.OK).order_by("-started_at").first()
    first_bad = (
        finished.filter(status=BackupRecord.Status.FAILED)
        .filter(**({"started_at__gt": last_ok.started_at} if last_ok else {}))
        .order_by("started_at")
        .first()
    )
    return [
        Finding(
            "backup:failed",
            "Backup failed",
            f"The database backup {newest.file_name} failed: {newest.error.strip()[:300]}. "
            f"Failing since {_when(first_bad.started_at)}"
            + (f"; last good backup {last_ok.file_name}." if last_ok else "; no good backup."),
            absolute(reverse("backups")),
            first_bad.started_at,
        )
    ]


def backup_monitor(open_keys: set[str]) -> list[Finding]:
    """The monitor's newest verdict is failing (too old, missing, shrunk, unreadable). Inhibited
    while backup:failed is open (the same fault, one message), and a verdict older than the
    newest backup attempt waits for the next check (the backup may have fixed it)."""
    check = BackupCheck.objects.order_by("-checked_at", "-id").first()
    if check is None or check.ok or "backup:failed" in open_keys:
        return []
    newest = BackupRecord.objects.order_by("-started_at").values_list("started_at", flat=True)
    if newest and newest[0] > check.checked_at:
        return []
    last_ok = (
        BackupCheck.objects.filter(ok=True, checked_at__lt=check.checked_at)
        .order_by("-checked_at")
        .values_list("checked_at", flat=True)
        .first()
    )
    since = (
        BackupCheck.objects.filter(**({"checked_at__gt": last_ok} if last_ok else {})).aggregate(
            m=Min("checked_at")
        )["m"]
        or check.checked_at
    )
    return [
        Finding(
            "backup_monitor",
            "Backup monitor failing",
            f"The backup monitor reports: {check.message}. Failing since {_when(since)}.",
            absolute(reverse("backups")),
            since,
        )
    ]


def discrepancies() -> list[Finding]:
    """Open discrepancies above tolerance, one alert per run that found them and organisation,
    resolved when that run's are all reviewed (a later run that still sees them opens nothing)."""
    tolerance = settings.RECONCILIATION_TOLERANCE
    groups = (
        Discrepancy.objects.filter(
            status=Discrepancy.Status.OPEN, abs_difference__gt=tolerance, run__dry_run=False
        )
        .values("run_id", "organization_id", "organization__slug", "organization__schema_name")
        .annotate(n=Count("id"), largest=Max("abs_difference"), since=Min("created_at"))
        .order_by("run_id", "organization_id")
    )
    return [
        Finding(
            f"discrepancies:{g['run_id']}:{g['organization__schema_name']}",
            f"{g['n']} discrepancies in {g['organization__slug']}",
            f"Reconciliation run {g['run_id']} found {g['n']} open discrepancies above the "
            f"tolerance of {tolerance} in {g['organization__slug']}; the largest difference is "
            f"{g['largest'].normalize():f}. Waiting for review since {_when(g['since'])}.",
            absolute(
                reverse("reconciliation"),
                {
                    "org": g["organization__slug"],
                    "status": "open",
                    "run": g["run_id"],
                    "min": str(tolerance),
                },
            ),
            g["since"],
            g["organization_id"],
        )
        for g in groups
    ]


def reconciliations_failed() -> list[Finding]:
    """The newest finished reconciliation of an organisation failed. The nightly schedule runs
    without a JobRun, so this reads the run itself (a page's run also fails its JobRun)."""
    latest = (
        ReconciliationRun.objects.exclude(status=ReconciliationRun.Status.RUNNING)
        .select_related("organization")
        .order_by("organization_id", "-started_at")
        .distinct("organization_id")
    )
    return [
        Finding(
            f"reconciliation:{run.organization.schema_name}",
            f"Reconciliation failed for {run.organization.slug}",
            f"The {run.mode} reconciliation of {run.organization.slug} (run {run.id}, started "
            f"{_when(run.started_at)}) failed: {run.error.strip()[:300] or 'no error recorded'}",
            absolute(reverse("fleet")),
            run.finished_at or run.started_at,
            run.organization_id,
        )
        for run in latest
        if run.status == ReconciliationRun.Status.FAILED
    ]


# Backups and the monitor have their own rules above.
JOB_KINDS = [k for k in JobRun.Kind.values if k not in ("backup", "backup_monitor")]


def _orgs_by_schema() -> dict[str, Organization]:
    return {o.schema_name: o for o in Organization.objects.all()}


def jobs_failed(orgs: dict[str, Organization]) -> list[Finding]:
    """The newest finished run of each kind and schema failed or was interrupted."""
    latest = (
        JobRun.objects.filter(kind__in=JOB_KINDS, status__in=JobRun.TERMINAL)
        .order_by("kind", "schema_name", "-created_at")
        .distinct("kind", "schema_name")
    )
    findings = []
    for run in latest:
        if run.status == JobRun.Status.SUCCEEDED:
            continue
        org = orgs.get(run.schema_name)
        where = org.slug if org else (run.schema_name or "the platform")
        link = (
            absolute(reverse("runbook", args=[org.slug]))
            if org
            else absolute(reverse("job_status", args=[run.id]))
        )
        findings.append(
            Finding(
                f"job:{run.kind}:{run.schema_name or 'platform'}",
                f"{run.kind.capitalize()} {run.status} for {where}",
                f"The {run.kind} job (run {run.id}) for {where} {run.status} at "
                f"{_when(run.finished_at or run.created_at)}: "
                f"{(run.error or run.message or 'no error recorded').strip()[:300]}",
                link,
                run.finished_at or run.created_at,
                org.id if org else None,
            )
        )
    return findings


def validation_failing(orgs: dict[str, Organization]) -> list[Finding]:
    """The newest validation of an organisation finished with failed checks."""
    latest = (
        JobRun.objects.filter(kind=JobRun.Kind.VALIDATE, status=JobRun.Status.SUCCEEDED)
        .order_by("schema_name", "-created_at")
        .distinct("schema_name")
    )
    findings = []
    for run in latest:
        org = orgs.get(run.schema_name)
        if org is None or run.result.get("ok") is not False:
            continue
        failed = [c["name"] for c in run.result.get("checks", []) if not c.get("ok")]
        findings.append(
            Finding(
                f"validation:{run.schema_name}",
                f"Validation failing for {org.slug}",
                f"Validation of {org.slug} (run {run.id}, {_when(run.finished_at)}) failed "
                f"{len(failed)} check(s): {', '.join(failed)[:300]}.",
                absolute(reverse("runbook", args=[org.slug])),
                run.finished_at or run.created_at,
                org.id,
            )
        )
    return findings


def worker_heartbeat() -> list[Finding]:
    """The newest heartbeat is older than WORKER_HEARTBEAT_MAX_AGE_SECONDS (as /health reads it).
    The evaluation itself runs on the worker: run `manage.py evaluate_alerts` from cron too."""
    beat = WorkerHeartbeat.objects.order_by("-beat_at").first()
    limit = settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS
    now = timezone.now()
    if beat is not None and (now - beat.beat_at).total_seconds() <= limit:
        return []
    summary = (
        f"The background worker's last heartbeat was at {_when(beat.beat_at)}, more than "
        f"{limit}s ago: jobs, backups and scheduled reconciliations are not running."
        if beat
        else "No worker heartbeat has been recorded: is `manage.py qcluster` running?"
    )
    return [
        Finding(
            "worker:heartbeat",
            "Worker heartbeat stale",
            summary,
            absolute(reverse("health")),
            beat.beat_at if beat else now,
        )
    ]


def findings() -> list[Finding]:
    orgs = _orgs_by_schema()
    found = backup_failed()
    found += backup_monitor({f.key for f in found})
    found += discrepancies()
    found += reconciliations_failed()
    found += jobs_failed(orgs)
    found += validation_failing(orgs)
    found += worker_heartbeat()
    return found
