"""The schedules the product runs on; setup_schedules writes them idempotently.

Operations' own schedules are listed here; other apps declare theirs with `schedule_register`
from their AppConfig.ready() (as they declare their job kinds), so operations names no other app.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone
from django_q.models import Schedule


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    func: str
    schedule_type: str
    minutes: int | None = None
    cron: str | None = None


SCHEDULES = [
    ScheduleSpec(
        "worker heartbeat", "operations.tasks.worker_heartbeat", Schedule.MINUTES, minutes=1
    ),
    ScheduleSpec(
        "backup database", "operations.tasks.backup_database", Schedule.CRON, cron="30 1 * * *"
    ),
    # After the backup, before the monitor (which fails on a last good drill over 8 days old).
    ScheduleSpec(
        "restore drill", "operations.drills.restore_drill_task", Schedule.CRON, cron="30 2 * * *"
    ),
    ScheduleSpec(
        "monitor backups", "operations.tasks.monitor_backups", Schedule.CRON, cron="0 3 * * *"
    ),
]


def schedule_register(spec: ScheduleSpec) -> None:
    """Declare an app's schedule (idempotent by name: ready() may run more than once)."""
    if spec.name not in {s.name for s in SCHEDULES}:
        SCHEDULES.append(spec)


def schedules_ensure() -> list[tuple[str, bool]]:
    results = []
    for spec in SCHEDULES:
        fields = {
            "func": spec.func,
            "schedule_type": spec.schedule_type,
            "minutes": spec.minutes,
            "cron": spec.cron,
            "repeats": -1,
        }
        schedule = Schedule.objects.filter(name=spec.name).first()
        if schedule is None:
            # Minute schedules start now; cron schedules at their next time (django-q2 computes it).
            next_run = timezone.now() if spec.schedule_type == Schedule.MINUTES else None
            Schedule.objects.create(
                name=spec.name, **({"next_run": next_run} if next_run else {}), **fields
            )
            results.append((spec.name, True))
            continue
        changed = [k for k, v in fields.items() if getattr(schedule, k) != v]
        if changed:
            for k in changed:
                setattr(schedule, k, fields[k])
            if spec.schedule_type == Schedule.CRON:
                schedule.next_run = schedule.calculate_next_run(timezone.now())
                changed.append("next_run")
            schedule.save(update_fields=changed)
        results.append((spec.name, False))
    return results
