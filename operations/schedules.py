"""The schedules the product runs on, defined once; setup_schedules writes them idempotently."""

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
]


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
            Schedule.objects.create(name=spec.name, next_run=timezone.now(), **fields)
            results.append((spec.name, True))
            continue
        changed = [k for k, v in fields.items() if getattr(schedule, k) != v]
        if changed:
            for k in changed:
                setattr(schedule, k, fields[k])
            schedule.save(update_fields=changed)
        results.append((spec.name, False))
    return results
