"""Prometheus multiprocess mode: where each process writes its metric files, and the cleanup.

Every gunicorn worker and every Celery process keeps its counters in memory-mapped files in
`PROMETHEUS_MULTIPROC_DIR`; `/metrics` (ops.metrics) adds the files up. With Docker Compose web
and worker are separate containers sharing one volume, and process ids repeat across
containers, so a process is named `<hostname>-<pid>` instead of prometheus-client's bare pid.
Each container removes only its own host's files before its processes start
(`python -m config.prometheus clean`), never another container's.

Without `PROMETHEUS_MULTIPROC_DIR` every process keeps its own in-memory metrics (development).
"""

import os
import socket
import sys
from pathlib import Path

from prometheus_client import multiprocess, values

ENV = "PROMETHEUS_MULTIPROC_DIR"


def directory() -> str:
    return os.environ.get(ENV, "")


def _host() -> str:
    # prometheus-client splits file names on "_": keep the name free of them.
    return socket.gethostname().replace("_", "-")


def process_identifier(pid: int | None = None) -> str:
    """Distinct across simultaneously running processes, also in different containers."""
    return f"{_host()}-{os.getpid() if pid is None else pid}"


_set_up = False


def setup() -> None:
    """Multiprocess values named by `process_identifier` when `PROMETHEUS_MULTIPROC_DIR` is
    set; call once, before creating any metric (whatsapp.core.metrics does)."""
    global _set_up
    if not _set_up:
        # Unset or empty: plain in-process values (prometheus-client would otherwise take an
        # empty variable for multiprocess mode and write into the working directory).
        values.ValueClass = (values.MultiProcessValue(process_identifier) if directory()
                             else values.MutexValue)
    _set_up = True


def mark_process_dead(pid: int) -> None:
    """gunicorn's `child_exit`: drops the live gauges of a worker that exited (counters and
    histograms stay, so sums never go backwards)."""
    if directory():
        multiprocess.mark_process_dead(process_identifier(pid), directory())


def clean() -> int:
    """Removes this host's metric files (run before the container's processes start)."""
    if not directory():
        return 0
    path = Path(directory())
    path.mkdir(parents=True, exist_ok=True)
    removed = 0
    for file in path.glob(f"*_{_host()}-*.db"):
        file.unlink(missing_ok=True)
        removed += 1
    return removed


if __name__ == "__main__":  # python -m config.prometheus clean
    if sys.argv[1:] != ["clean"]:
        sys.exit("usage: python -m config.prometheus clean")
    print(f"{clean()} metric files of this host removed from {directory() or '(unset)'}")
