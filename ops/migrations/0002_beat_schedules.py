"""Creates the default beat schedule (idempotent; `manage.py setup_schedules` does the same)."""

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
        ("ops", "0001_alerts_and_heartbeats"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, migrations.RunPython.noop)]
