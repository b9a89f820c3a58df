"""gunicorn.conf.py's worker hook: what every request needs is loaded at start, then frozen out
of the garbage collector's full collections (their pauses were the webhook's latency tail)."""

import json
import os
import subprocess
import sys

from django.conf import settings

HOOK = """
import gc, json, runpy, sys
import django
django.setup()  # as gunicorn's worker does when it loads config.wsgi
before = gc.get_freeze_count()
conf = runpy.run_path("gunicorn.conf.py")
conf["post_worker_init"](None)
print(json.dumps({"before": before, "frozen": gc.get_freeze_count(),
                  "views_loaded": "whatsapp.api.views" in sys.modules}))
"""


def test_a_worker_loads_its_views_and_freezes_them_before_the_first_request():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    out = subprocess.run([sys.executable, "-c", HOOK], cwd=settings.BASE_DIR, env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])

    assert result["before"] == 0
    assert result["views_loaded"]
    # Django, the apps, the URLconf and its views: far more than a handful of objects.
    assert result["frozen"] > 100_000
