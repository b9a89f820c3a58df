"""The Celery application: `celery -A config worker` / `celery -A config beat`."""

import os

from celery import Celery

# Production unless told otherwise (fails closed: DEBUG off, secrets required); bin/demo
# and bin/test export the development and test settings.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("config")
# Every CELERY_* setting in Django's settings configures Celery.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
