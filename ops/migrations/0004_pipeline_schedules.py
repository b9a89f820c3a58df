"""Adds the new default beat entries of December 2026 (pipeline sweep, WABA reconciliation,
token-expiry notices, lead events, human-takeover expiry, erasures, media) to an existing
schedule; `schedules_ensure` keeps every entry that is already there (and an operator's edits)."""

from django.db import migrations


def create_schedules(apps, schema_editor) -> None:
    from ops.schedules import schedules_ensure

    schedules_ensure(
        apps.get_model("django_celery_beat", "PeriodicTask"),
        apps.get_model("django_celery_beat", "IntervalSchedule"),
        apps.get_model("django_celery_beat", "CrontabSchedule"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0003_webhook_body_retention_schedule"),
    ]

    operations = [migrations.RunPython(create_schedules, migrations.RunPython.noop)]
