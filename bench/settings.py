"""Settings for the bench's own gunicorn and Celery processes (never used in production).

The product's settings plus a URLconf that also mounts the bare reference endpoint, and a
guard: the bench only ever runs against a database whose name starts with `qualifica_bench`.
"""

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES

ROOT_URLCONF = "bench.urls"

if not str(DATABASES["default"].get("NAME", "")).startswith("qualifica_bench"):
    raise RuntimeError("bench.settings refuses a database not named qualifica_bench*")

if _gc_log := __import__("os").environ.get("BENCH_GC_LOG"):
    from bench import gcpauses

    gcpauses.install(_gc_log)  # bench/run.py --gc-pauses: each collection's pause, timed
