"""Leases and their heartbeat (issue 15 §4) against real gunicorn, Celery workers, beat and
PostgreSQL: a dead worker's delivery comes back within seconds; a live worker's long delivery
is never taken from it. Select with `-m worker`; `-s` prints the measured times."""

import os
import signal
import time

import pytest
from django.utils import timezone

from audit.models import AuditLog
from tests.conversations.test_history import big_chunk
from tests.factories import fixture_numbers
from tests.meta import wire
from tests.reliability.conftest import VENV_BIN, envelope, post, wait_until
from tests.reliability.test_broker_outages import log_tail
from whatsapp.models import Message, WebhookLog

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# The stack's short test timings, dropped so the product's defaults apply.
TEST_TIMINGS = ("WHATSAPP_WEBHOOK_LEASE_SECONDS", "CELERY_VISIBILITY_TIMEOUT",
                "CELERY_TASK_SOFT_TIME_LIMIT", "CELERY_TASK_TIME_LIMIT",
                "WHATSAPP_WEBHOOK_SWEEP_STALE_SECONDS", "WHATSAPP_WEBHOOK_RETRY_BASE_SECONDS",
                "WHATSAPP_WEBHOOK_RETRY_MAX_SECONDS", "WHATSAPP_WEBHOOK_MAX_ATTEMPTS")


def start_default_beat(stack):
    """Beat with the product's default schedule, untouched: the webhook sweeper every 30 s."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    from ops.schedules import schedules_ensure

    schedules_ensure(PeriodicTask, IntervalSchedule, CrontabSchedule)
    assert PeriodicTask.objects.get(name="webhook retry sweep").interval.every == 30
    proc = stack._spawn([str(VENV_BIN / "celery"), "-A", "tests.reliability.celery_app", "beat",
                         "-l", "INFO", "-s", str(stack.tmp / "beat-schedule")], "beat")
    wait_until(lambda: "Sending due task" in proc.log_path.read_text(errors="replace")
               or proc.poll() is not None, timeout=30, message="beat ticking")
    assert proc.poll() is None, log_tail(proc)
    return proc


def test_killed_worker_delivery_is_processed_again_within_60s_with_default_settings(stack):
    for name in TEST_TIMINGS:
        stack.env.pop(name)
    stack.start_web()
    worker = stack.start_worker()
    start_default_beat(stack)
    assert post(stack.web_url, envelope("test_slow", {"n": 1, "sleep": 600})).status_code == 200
    log_id = WebhookLog.objects.get().pk
    marker = stack.markers / "started-1"
    wait_until(marker.exists, timeout=30, message="slow handler started")
    # The live attempt keeps renewing its 20 s lease (nothing takes the row from it).
    first = WebhookLog.objects.get(pk=log_id).locked_until
    wait_until(lambda: WebhookLog.objects.get(pk=log_id).locked_until > first, timeout=15,
               message="lease renewed by the heartbeat")

    killed_at = time.monotonic()
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    stack.start_worker("worker2")
    available_at = time.monotonic()

    # Only beat's own sweeper (every 30 s) and the default lease: no test sweeps.
    wait_until(lambda: WebhookLog.objects.get(pk=log_id).status == "processed", timeout=90,
               interval=0.2, message="the dead worker's delivery processed again")
    done = time.monotonic()
    print(f"\nmeasure: whole worker SIGKILL, default settings (lease 20 s, sweep 30 s) → "
          f"processed {done - available_at:.1f} s after a worker was available "
          f"({done - killed_at:.1f} s after the kill)")
    assert done - available_at < 60
    log = WebhookLog.objects.get(pk=log_id)
    assert log.attempts == 2, log.attempts
    assert AuditLog.objects.filter(action="TEST_HANDLER", target="1").count() == 1


def test_history_import_longer_than_many_leases_is_never_taken_from_a_live_worker(stack):
    numbers = fixture_numbers()
    body, count = big_chunk()
    raw = wire(body)
    assert len(raw) > 2.9 * 1024 * 1024
    # Lease 4 s (the stack's); the import waits 12 s first: longer than three leases.
    stack.env["RELIABILITY_HISTORY_DELAY"] = "12"
    stack.start_web()
    stack.start_worker()
    assert post(stack.web_url, raw, timeout=30).status_code == 200
    log_id = WebhookLog.objects.get().pk
    runs = stack.markers / "history-runs"
    wait_until(runs.exists, timeout=30, message="the history import started")

    started = time.monotonic()
    leases = []

    def leased_and_processed() -> bool:
        log = WebhookLog.objects.get(pk=log_id)
        if log.status == "processing":
            # Every time we look, the lease is still in the future: never expired.
            assert log.locked_until > timezone.now(), "lease expired under a live worker"
            leases.append(log.locked_until)
        return log.status == "processed"

    # The sweeper every second (beat's is 30 s) tries to re-enqueue an expired lease.
    stack.sweep_until(leased_and_processed, timeout=120, interval=0.5,
                      message="history delivery processed")
    took = time.monotonic() - started
    log = WebhookLog.objects.get(pk=log_id)
    renewals = len(set(leases)) - 1
    print(f"\nmeasure: 3 MB history import took {took:.1f} s under a 4 s lease; "
          f"{renewals} renewals seen, {log.attempts} attempt(s)")
    assert took > 3 * 4
    assert renewals >= 2
    assert log.attempts == 1
    assert runs.read_text().count("\n") == 1  # imported once, never by a second attempt
    assert Message.objects.filter(config=numbers["B"]).count() == count
