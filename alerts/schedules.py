"""The alerts app's schedule: evaluate the rules every minute (alerts/rules.py)."""

from django_q.models import Schedule

from operations.schedules import ScheduleSpec, schedule_register

schedule_register(
    ScheduleSpec("evaluate alerts", "alerts.tasks.evaluate_alerts", Schedule.MINUTES, minutes=1)
)
