"""The web and worker processes load what they serve with at start, then freeze it out of the
garbage collector's full collections (their 40–220 ms pauses were the tail of a webhook's and a
live delivery's latency): gunicorn.conf.py's worker hook and config/celery.py's signals."""

import json
import os
import subprocess
import sys

from django.conf import settings

GUNICORN_WORKER = """
import runpy, sys
import django
django.setup()  # as gunicorn's worker does when it loads config.wsgi
conf = runpy.run_path("gunicorn.conf.py")
conf["post_worker_init"](None)
loaded = "whatsapp.api.views" in sys.modules
"""

CELERY_CHILD = """
from config.celery import app
app.loader.import_default_modules()  # the worker's start: Django set up, the tasks imported
from celery.signals import worker_process_init
worker_process_init.send(sender=None)  # what a prefork child receives after the fork
loaded = "whatsapp.tasks" in sys.modules
"""

REPORT = """
import gc, json, sys
before = gc.get_freeze_count()
{body}
print(json.dumps({{"before": before, "frozen": gc.get_freeze_count(), "loaded": loaded}}))
"""


def run(body: str) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    out = subprocess.run([sys.executable, "-c", REPORT.format(body=body)], cwd=settings.BASE_DIR,
                         env=env, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_gunicorn_worker_loads_its_views_and_freezes_them_before_the_first_request():
    result = run(GUNICORN_WORKER)

    assert result["before"] == 0 and result["loaded"]
    # Django, the apps, the URLconf and its views: far more than a handful of objects.
    assert result["frozen"] > 100_000


def test_a_celery_worker_process_freezes_what_it_loaded_before_its_first_task():
    result = run(CELERY_CHILD)

    assert result["before"] == 0 and result["loaded"]
    assert result["frozen"] > 100_000
