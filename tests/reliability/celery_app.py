"""Celery app for the reliability tests' worker subprocesses: the production app plus two
test-only handlers, installed here so no test hook lives in production code.

- field `test_slow`: sleeps on its first attempt (so the test can SIGKILL the worker mid-task)
  and records every completed run as an audit row (to count executions).
- field `test_boom`: raises until the file `fixed` exists in RELIABILITY_MARKERS.
- with RELIABILITY_HISTORY_DELAY set, the real `history` handler waits that many seconds
  first (a slow machine) and appends one line per run to `history-runs`; the import itself is
  the product's.
"""

import os
import time
from pathlib import Path

from celery.signals import worker_process_init

from config.celery import app  # noqa: F401  (the app celery -A loads)

MARKERS = Path(os.environ.get("RELIABILITY_MARKERS", "/tmp"))


def slow(change, ctx) -> None:
    from audit.models import AuditLog

    started = MARKERS / f"started-{change.value.get('n')}"
    first = not started.exists()
    started.write_text(str(os.getpid()))
    if first:
        time.sleep(float(change.value.get("sleep", 60)))
    AuditLog.objects.create(action="TEST_HANDLER", actor_label="test-slow",
                            target=str(change.value.get("n")))


def boom(change, ctx) -> None:
    if not (MARKERS / "fixed").exists():
        raise RuntimeError("test handler exploded")


def slowed(handler):
    def handle(change, ctx) -> None:
        with (MARKERS / "history-runs").open("a") as runs:
            runs.write(f"{os.getpid()}\n")
        time.sleep(float(os.environ["RELIABILITY_HISTORY_DELAY"]))
        handler(change, ctx)

    return handle


@worker_process_init.connect
def _install(**kwargs) -> None:
    from whatsapp.webhooks.dispatch import FIELD_HANDLERS

    FIELD_HANDLERS["test_slow"] = slow
    FIELD_HANDLERS["test_boom"] = boom
    if os.environ.get("RELIABILITY_HISTORY_DELAY"):
        FIELD_HANDLERS["history"] = slowed(FIELD_HANDLERS["history"])
