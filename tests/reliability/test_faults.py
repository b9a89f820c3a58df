"""Fault tests against real PostgreSQL, Redis servers, gunicorn and Celery worker processes.

Select with `-m worker`. Every wait polls a condition with a deadline.
"""

import os
import signal
import time
import uuid

import pytest
import requests
from django.db.models import Count

from audit.models import AuditLog
from organizations.models import ApiToken
from tests.factories import MembershipFactory
from tests.meta import partner_added, wire
from tests.reliability.conftest import envelope, post, wait_until
from whatsapp.models import Connection, Onboarding, WebhookLog

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def statuses(ids) -> dict[int, str]:
    return dict(WebhookLog.objects.filter(pk__in=ids).values_list("pk", "status"))


def all_in(ids, status: str) -> bool:
    current = statuses(ids)
    return len(current) == len(ids) and set(current.values()) == {status}


def sigkill(stack, worker, kill: str, marker) -> None:
    """SIGKILLs the whole worker (and starts another) or only the pool child that wrote
    `marker` (OOM-like: the parent requeues the task, reject_on_worker_lost)."""
    if kill == "whole worker":
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        stack.start_worker("worker2")
    else:
        os.kill(int(marker.read_text()), signal.SIGKILL)


def test_broker_stopped_deliveries_are_stored_and_processed_when_it_is_back(stack):
    stack.start_web()
    stack.start_worker()
    stack.broker.stop()

    bodies = [envelope("test_noop", {"n": i}) for i in range(10)]
    started = time.monotonic()
    codes = [post(stack.web_url, body).status_code for body in bodies]
    per_request = (time.monotonic() - started) / len(bodies)
    assert codes == [200] * 10
    ids = list(WebhookLog.objects.values_list("pk", flat=True))
    assert len(ids) == 10 and all_in(ids, "received")
    assert sorted(bytes(b) for b in WebhookLog.objects.values_list("raw_body", flat=True)) == \
        sorted(bodies)
    # A dead broker costs a request a bounded publish retry, not a hang, and only one request
    # of the cooldown pays it: the others are only pushed to the Redis inbox.
    assert per_request < 3, per_request
    web_log = next(p for p in stack.procs if p.log_path.name == "web.log").log_path.read_text()
    assert web_log.count("Could not start a webhook drainer") == 1, web_log[-3000:]

    stack.broker.start()
    back = time.monotonic()
    # What beat does every 30 s; the worker reconnects to the restarted broker by itself.
    stack.sweep_until(lambda: all_in(ids, "processed"), timeout=60,
                      message="all deliveries processed after broker restart")
    print(f"\nmeasure: broker down, {per_request * 1000:.0f} ms per delivery; all processed "
          f"{time.monotonic() - back:.1f} s after the broker came back")


@pytest.mark.parametrize("kill", ["whole worker", "pool child"])
def test_worker_killed_mid_task_processes_the_event_exactly_once(stack, kill):
    stack.start_web()
    worker = stack.start_worker()
    assert post(stack.web_url, envelope("test_slow", {"n": 1, "sleep": 60})).status_code == 200
    log_id = WebhookLog.objects.get().pk
    marker = stack.markers / "started-1"
    wait_until(marker.exists, timeout=20, message="slow handler started")
    assert WebhookLog.objects.get().status == "processing"

    killed_at = time.monotonic()
    sigkill(stack, worker, kill, marker)

    # The redelivered message finds the row leased; once the lease expires the sweeper
    # re-enqueues it and exactly one new attempt takes it.
    stack.sweep_until(lambda: all_in([log_id], "processed"), timeout=60,
                      message="slow delivery processed after the kill")
    print(f"\nmeasure: {kill} SIGKILL → processed in {time.monotonic() - killed_at:.1f} s "
          "(lease 4 s)")
    # A late redelivery of the original message (Redis restores it after the visibility
    # timeout, ~100 s later for a dead worker) must be a no-op: deliver one now and let it run.
    redelivery = stack.send("whatsapp.tasks.process_webhook", log_id)
    wait_until(lambda: stack.task_finished(redelivery), timeout=20, message="redelivery ran")
    log = WebhookLog.objects.get()
    assert AuditLog.objects.filter(action="TEST_HANDLER", target="1").count() == 1
    assert log.attempts == 2, log.attempts


@pytest.mark.parametrize("kill", ["whole worker", "pool child"])
def test_worker_killed_mid_drain_every_delivery_of_the_burst_runs_exactly_once(stack, kill):
    """A drainer pops a whole batch from the Redis inbox, then dies on its first delivery: the
    ids it popped are gone from Redis, but their rows are not, and nothing runs twice."""
    stack.start_web()
    for n in range(1, 13):  # stored and announced while no worker runs: one batch of 12
        value = {"n": n, "sleep": 60 if n == 1 else 0}
        assert post(stack.web_url, envelope("test_slow", value)).status_code == 200
    ids = list(WebhookLog.objects.order_by("pk").values_list("pk", flat=True))
    for n in range(2, 13):  # only delivery 1 sleeps; the others run at once when reached
        (stack.markers / f"started-{n}").write_text("seen")
    worker = stack.start_worker()
    marker = stack.markers / "started-1"
    wait_until(lambda: marker.read_text() if marker.exists() else "", timeout=20,
               message="the drainer reached delivery 1")
    assert stack.cache.client().llen("whatsapp:webhooks:inbox") == 0  # all 12 popped

    killed_at = time.monotonic()
    sigkill(stack, worker, kill, marker)
    stack.sweep_until(lambda: all_in(ids, "processed"), timeout=60,
                      message="every delivery of the burst processed after the kill")
    print(f"\nmeasure: {kill} SIGKILL mid-drain → 12/12 processed in "
          f"{time.monotonic() - killed_at:.1f} s (lease 4 s)")
    runs = dict(AuditLog.objects.filter(action="TEST_HANDLER").values_list("target")
                .annotate(n=Count("id")).values_list("target", "n"))
    assert runs == {str(n): 1 for n in range(1, 13)}


def test_database_unreachable_webhook_answers_5xx_never_200(stack):
    closed = f"postgres://postgres@127.0.0.1:{_closed_port()}/nothing"
    url = stack.start_web(env={"DATABASE_URL": closed}, name="web-nodb")
    for i in range(5):
        response = post(url, envelope("test_noop", {"n": i}))
        assert 500 <= response.status_code < 600, response.status_code
    assert requests.get(f"{url}/readyz", timeout=5).status_code == 503
    # Forged requests are still refused (they never needed the database).
    assert post(url, b"{}", signed=False).status_code == 403


def _closed_port() -> int:
    from tests.reliability.conftest import free_port

    return free_port()  # bound then released: nothing listens there


def test_redis_stopped_onboarding_and_processing_go_on(stack):
    from ops.models import Heartbeat

    membership = MembershipFactory()
    _, raw = ApiToken.issue(user=membership.user, organization=membership.organization)
    stack.start_web()
    stack.start_worker()
    stack.cache.stop()
    auth = {"Authorization": f"Bearer {raw}"}

    response = requests.get(f"{stack.web_url}/api/v1/whatsapp/onboarding-url", headers=auth,
                            timeout=10)
    assert response.status_code == 200, response.text
    code = response.json()["trackingCode"]
    assert Onboarding.objects.filter(tracking_code=code).exists()

    # PARTNER_ADDED echoing the code: attributed from the database, Redis being down.
    waba = f"1029{uuid.uuid4().int % 10**11:011d}"
    added = wire(partner_added(waba_id=waba, tracking_code=code))
    assert post(stack.web_url, added).status_code == 200
    assert post(stack.web_url, envelope("test_noop", {"n": 1})).status_code == 200
    ids = list(WebhookLog.objects.values_list("pk", flat=True))
    wait_until(lambda: all_in(ids, "processed"), timeout=30, message="processed without Redis")
    assert Connection.objects.get(waba_id=waba).organization_id == membership.organization_id

    status = requests.get(f"{stack.web_url}/api/v1/whatsapp/check-connection", headers=auth,
                          timeout=10)
    assert status.status_code == 200
    Heartbeat.beat("beat")
    ready = requests.get(f"{stack.web_url}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["cache"].startswith("error")
    # The Redis-down alert, raised by the periodic check running in the worker.
    from ops.models import AlertState

    stack.send("ops.tasks.redis_health")
    wait_until(lambda: AlertState.objects.filter(key="redis_down", active=True).exists(),
               timeout=20, message="redis_down alert")


def test_poison_payload_retries_dies_is_visible_and_replays_after_a_fix(stack, client,
                                                                        django_user_model):
    stack.start_web()
    stack.start_worker()
    boom = post(stack.web_url, envelope("test_boom", {"n": 0}))
    assert boom.status_code == 200
    boom_id = WebhookLog.objects.get().pk
    for i in range(5):
        assert post(stack.web_url, envelope("test_noop", {"n": i})).status_code == 200
    others = list(WebhookLog.objects.exclude(pk=boom_id).values_list("pk", flat=True))

    # Other deliveries are not held up behind the failing one.
    wait_until(lambda: all_in(others, "processed"), timeout=20, message="other deliveries")
    stack.sweep_until(lambda: all_in([boom_id], "dead"), timeout=60, interval=0.5,
                      message="poison dead")
    log = WebhookLog.objects.get(pk=boom_id)
    assert log.attempts == 3 and "test handler exploded" in log.last_error
    assert log.next_attempt_at is None

    # Visible in the admin, with its error.
    staff = django_user_model.objects.create_superuser("ops@q.test", "ops@q.test", "x")
    client.force_login(staff)
    page = client.get("/admin/whatsapp/webhooklog/?status__exact=dead")
    assert b"test handler exploded" in page.content

    # The fix ships; support replays the dead delivery with the real command.
    (stack.markers / "fixed").write_text("1")
    import json
    import subprocess

    from tests.reliability.conftest import ROOT, VENV_BIN

    out = subprocess.run([str(VENV_BIN / "python"), "manage.py", "replay_webhooks", "--dead",
                          "--json"], cwd=ROOT, env=stack.env, capture_output=True, text=True,
                         timeout=60, check=True)
    assert json.loads(out.stdout)["ids"] == [boom_id]
    wait_until(lambda: all_in([boom_id], "processed"), timeout=30, message="replayed")
    assert AuditLog.objects.filter(action="WEBHOOK_REPLAYED", actor_label="manage.py").exists()


def test_live_server_survives_fuzzed_requests(stack):
    """The in-process fuzz test covers 1,000 cases; this checks a real gunicorn stays up."""
    import random

    from tests.reliability.test_fuzz import fuzz_body

    stack.start_web()
    rng = random.Random(7)
    codes = {}
    for i in range(200):
        body = fuzz_body(rng)
        response = post(stack.web_url, body, signed=i % 4 == 0)
        codes[response.status_code] = codes.get(response.status_code, 0) + 1
    assert set(codes) <= {200, 403, 429}, codes
    assert requests.get(f"{stack.web_url}/healthz", timeout=5).status_code == 200
    assert WebhookLog.objects.count() == codes.get(200, 0) == 50
