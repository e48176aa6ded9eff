from django.core.management.base import BaseCommand

from alerts.services import alerts_evaluate


class Command(BaseCommand):
    help = (
        "Evaluate the alert rules now: open and resolve alerts and queue their deliveries (the "
        "worker sends them). Runs every minute on the worker's schedule; run it from cron too, "
        "so a dead worker is reported."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--send", action="store_true", help="send the queued deliveries in this process"
        )

    def handle(self, *args, send=False, **options):
        if send:
            from django_q.conf import Conf

            Conf.SYNC = True  # async_task runs each delivery here, after the commit
        result = alerts_evaluate()
        for alert in result.opened:
            self.stdout.write(f"opened   {alert.key}: {alert.summary}")
        for alert in result.resolved:
            self.stdout.write(f"resolved {alert.key}")
        self.stdout.write(result.summary())
