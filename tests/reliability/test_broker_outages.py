"""Repeated broker outages against a real gunicorn, Celery worker and beat (issue 15, item 3).

The broker Redis is stopped five times in a row, each time while the worker is in the middle of
a delivery, and deliveries keep arriving all along. Afterwards the worker and beat must still be
running and every delivery stored meanwhile must be processed exactly once.
"""

import threading
import time

import pytest
from django.db.models import Count
from django.utils import timezone

from audit.models import AuditLog
from tests.meta import change_value
from tests.reliability.conftest import VENV_BIN, envelope, post, wait_until
from whatsapp.models import WebhookLog

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# Seconds the broker stays down, cut after cut (58 s in all).
OUTAGES = [5, 5, 8, 10, 30]


class Poster(threading.Thread):
    """Posts a signed `test_slow` delivery every `interval` seconds until stopped."""

    def __init__(self, stack, interval: float = 0.3) -> None:
        super().__init__(daemon=True)
        self.stack, self.interval = stack, interval
        self.next_n = 1000
        self.codes: dict[int, int] = {}
        self.errors: list[str] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def post(self, sleep: float) -> int:
        with self._lock:
            n = self.next_n
            self.next_n += 1
        try:
            code = post(self.stack.web_url, envelope("test_slow", {"n": n, "sleep": sleep}),
                        timeout=15).status_code
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(f"{n}: {exc!r}")
            return n
        with self._lock:
            self.codes[code] = self.codes.get(code, 0) + 1
        return n

    def run(self) -> None:
        while not self._halt.is_set():
            self.post(0.05)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)


def start_beat(stack):
    """Beat with the product's schedule (DatabaseScheduler), the heartbeat and the webhook
    sweeper every 2 s instead of 30 s, so beat publishes during every outage."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    from ops.schedules import schedules_ensure

    schedules_ensure(PeriodicTask, IntervalSchedule, CrontabSchedule)
    every_2s, _ = IntervalSchedule.objects.get_or_create(every=2, period="seconds")
    PeriodicTask.objects.filter(name__in=["beat heartbeat", "webhook retry sweep"]).update(
        interval=every_2s)
    proc = stack._spawn([str(VENV_BIN / "celery"), "-A", "tests.reliability.celery_app", "beat",
                         "-l", "INFO", "-s", str(stack.tmp / "beat-schedule")], "beat")
    wait_until(lambda: "Sending due task beat heartbeat" in proc.log_path.read_text(
        errors="replace") or proc.poll() is not None, timeout=30, message="beat ticking")
    assert proc.poll() is None, proc.log_path.read_text()[-3000:]
    return proc


def log_tail(proc, chars: int = 4000) -> str:
    return proc.log_path.read_text(errors="replace")[-chars:]


def test_worker_and_beat_survive_five_broker_outages_and_process_everything_once(stack):
    from ops.models import Heartbeat

    stack.start_web()
    # Two processes, as docker-compose.yml runs it: one is busy with a delivery while the other
    # waits on the broker (a BRPOP in flight), the state in which an outage killed the worker.
    worker = stack.start_worker(concurrency=2)
    beat = start_beat(stack)
    poster = Poster(stack)
    poster.start()
    recoveries: list[float] = []
    try:
        for number, seconds in enumerate(OUTAGES, 1):
            # A delivery the worker is busy with when the connection drops (an unacknowledged
            # late-ack task), as in the reported crash.
            n = poster.post(sleep=4)
            marker = stack.markers / f"started-{n}"
            wait_until(marker.exists, timeout=60, message=f"delivery {n} started (cut {number})")
            stack.broker.stop()
            down_until = time.monotonic() + seconds
            while time.monotonic() < down_until:
                assert worker.poll() is None, f"worker died in cut {number}:\n{log_tail(worker)}"
                time.sleep(0.5)
            stack.broker.start()
            back = time.monotonic()
            stored = list(WebhookLog.objects.values_list("pk", flat=True))
            wait_until(lambda ids=stored: _all_processed(ids) or worker.poll() is not None,
                       timeout=60, message=f"deliveries stored until cut {number} processed")
            assert worker.poll() is None, f"worker died after cut {number}:\n{log_tail(worker)}"
            recoveries.append(time.monotonic() - back)
    finally:
        poster.stop()

    last_back = timezone.now()
    stored = list(WebhookLog.objects.values_list("pk", flat=True))
    wait_until(lambda: _all_processed(stored), timeout=60, message="every delivery processed")
    # Beat → broker → worker works again: a heartbeat sent and run after the last outage.
    wait_until(lambda: Heartbeat.objects.filter(name="beat", at__gt=last_back).exists(),
               timeout=30, message="a beat heartbeat after the last outage")

    assert worker.poll() is None, log_tail(worker)
    assert beat.poll() is None, log_tail(beat)
    for proc in (worker, beat):
        assert "Unrecoverable error" not in proc.log_path.read_text(errors="replace")
    assert not poster.errors, poster.errors[:5]
    assert poster.codes == {200: len(stored)}, poster.codes
    runs = dict(AuditLog.objects.filter(action="TEST_HANDLER").values_list("target")
                .annotate(n=Count("id")).values_list("target", "n"))
    targets = _targets()
    assert runs == {target: 1 for target in targets}, {
        t: c for t, c in runs.items() if c != 1} or sorted(targets - set(runs))[:10]
    print(f"\nmeasure: {len(OUTAGES)} broker outages of {OUTAGES} s with {len(stored)} "
          f"deliveries posted throughout; all stored deliveries processed "
          f"{', '.join(f'{r:.1f}' for r in recoveries)} s after the broker came back "
          f"(max {max(recoveries):.1f} s; beat sweeps every 2 s)")


def _all_processed(ids) -> bool:
    current = dict(WebhookLog.objects.filter(pk__in=ids).values_list("pk", "status"))
    return len(current) == len(ids) and set(current.values()) <= {"processed"}


def _targets() -> set[str]:
    import json

    return {str(change_value(json.loads(bytes(body)))["n"])
            for body in WebhookLog.objects.values_list("raw_body", flat=True)}
