import json

from django.core.management.base import BaseCommand
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from ops.schedules import schedules_ensure


class Command(BaseCommand):
    help = (
        "Creates the beat schedule (webhook retry sweep, onboarding expiry, token health at "
        "02:00 São Paulo, subscription reconciliation, alert evaluation, Redis health, beat "
        "heartbeat) in django-celery-beat. Idempotent: existing rows, including edits made in "
        "the admin, are kept; --reset restores the defaults. Migrations already run it once."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--reset", action="store_true",
                            help="Overwrite existing rows with the defaults.")
        parser.add_argument("--json", action="store_true",
                            help="Print one JSON object: schedule name → created/kept/reset.")

    def handle(self, *args, reset: bool, **options) -> None:
        results = schedules_ensure(PeriodicTask, IntervalSchedule, CrontabSchedule, reset=reset)
        if any(v != "kept" for v in results.values()):
            # Tells a running beat to reload its schedule.
            PeriodicTasks.update_changed()
        if options["json"]:
            self.stdout.write(json.dumps(results))
        else:
            for name, what in results.items():
                self.stdout.write(f"{name}: {what}")
