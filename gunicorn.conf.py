"""gunicorn settings read from the working directory (the image's /app): the Prometheus
multiprocess hook. Command-line flags (Dockerfile, docker-compose.yml) still set the rest."""

from config import prometheus


def child_exit(server, worker):
    # A worker that exited leaves its counters (sums never go back) but not its live gauges.
    prometheus.mark_process_dead(worker.pid)
