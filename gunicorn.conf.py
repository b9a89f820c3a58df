"""gunicorn settings read from the working directory (the image's /app): the Prometheus
multiprocess hook and the garbage collector's start-up freeze. Command-line flags (Dockerfile,
docker-compose.yml) still set the rest."""

import gc

from config import prometheus


def post_worker_init(worker):
    # What every request needs is loaded now rather than by the first requests (the URLconf
    # and its views, the cache's Redis client), then frozen: the collector's full collections
    # no longer walk the worker's hundreds of thousands of long-lived objects. Unfrozen, each
    # paused a worker 40–105 ms (bench/run.py's webhook phase): the tail of its latency.
    from django.core.cache import caches
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (imports every view)
    getattr(caches["default"], "client", None)  # django-redis imports redis on first use
    gc.freeze()


def child_exit(server, worker):
    # A worker that exited leaves its counters (sums never go back) but not its live gauges.
    prometheus.mark_process_dead(worker.pid)
