"""The Celery application: `celery -A config worker` / `celery -A config beat`."""

import gc
import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

# Production unless told otherwise (fails closed: DEBUG off, secrets required); bin/demo
# and bin/test export the development and test settings.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("config")
# Every CELERY_* setting in Django's settings configures Celery.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect  # each prefork child, after the fork
@worker_ready.connect  # the main process (the one that runs tasks with -P solo or threads)
def _freeze_loaded_objects(**kwargs) -> None:
    """Django, the apps and every task module are loaded by now: frozen, the collector's full
    collections no longer walk them. Unfrozen, each paused a worker process 80–220 ms while it
    held a batch of live deliveries (bench/run.py's lanes phase)."""
    gc.freeze()
