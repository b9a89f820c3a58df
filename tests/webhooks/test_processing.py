"""Processing a stored delivery: backoff with jitter, leases and their fencing, poison pills."""

from datetime import timedelta
from unittest import mock

import pytest

from tests.ingest_support import stored
from tests.meta import load, wire
from whatsapp.models import WebhookLog
from whatsapp.webhooks import process
from whatsapp.webhooks.dispatch import FIELD_HANDLERS

pytestmark = pytest.mark.django_db


# --- processing: backoff, leases, poison pills ----------------------------------------------
def test_retry_delay_grows_exponentially_with_jitter_and_is_capped(settings):
    settings.WHATSAPP_WEBHOOK_RETRY_BASE_SECONDS = 30
    settings.WHATSAPP_WEBHOOK_RETRY_MAX_SECONDS = 1800
    for attempt, ceiling in [(1, 30), (2, 60), (3, 120), (10, 1800)]:
        delays = {process.retry_delay(attempt).total_seconds() for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered


def test_failing_handler_retries_with_backoff_then_dies_with_its_error(settings):
    settings.WHATSAPP_WEBHOOK_MAX_ATTEMPTS = 3
    log = stored()
    with mock.patch.dict(FIELD_HANDLERS, {"messages": mock.Mock(side_effect=KeyError("boom"))}):
        assert process.webhook_process(log.pk) == WebhookLog.Status.FAILED
        log.refresh_from_db()
        assert log.attempts == 1 and "KeyError" in log.last_error and log.next_attempt_at
        assert bytes(log.raw_body) == wire(load("messages_text_inbound.json"))
        assert process.webhook_process(log.pk) == WebhookLog.Status.FAILED
        assert process.webhook_process(log.pk) == WebhookLog.Status.DEAD
    log.refresh_from_db()
    assert (log.status, log.attempts, log.next_attempt_at) == ("dead", 3, None)
    assert "boom" in log.last_error and "Traceback" in log.traceback


def test_expired_lease_is_retaken_exactly_once_and_the_stale_attempt_cannot_commit():
    log = stored()
    assert log.claim(lease=timedelta(seconds=-1))  # a first attempt whose lease already expired
    stale = WebhookLog.objects.get(pk=log.pk)
    second, third = WebhookLog.objects.get(pk=log.pk), WebhookLog.objects.get(pk=log.pk)
    assert second.claim(lease=timedelta(minutes=5))
    assert not third.claim(lease=timedelta(minutes=5))
    # The first attempt finishing late is fenced off by the lease it no longer holds.
    assert not stale.mark_processed(fields=["messages"], organization_id=None)
    assert second.mark_processed(fields=["messages"], organization_id=None)


def test_worker_dying_on_every_attempt_ends_dead_not_in_a_loop(settings):
    settings.WHATSAPP_WEBHOOK_MAX_ATTEMPTS = 2
    log = stored()
    for _ in range(2):  # the worker dies mid-task: claimed, never finished
        assert WebhookLog.objects.get(pk=log.pk).claim(lease=timedelta(seconds=-1))
    assert log.pk in set(WebhookLog.objects.due().values_list("pk", flat=True))
    assert process.webhook_process(log.pk) == WebhookLog.Status.DEAD
    log.refresh_from_db()
    assert log.status == "dead" and "Abandoned" in log.last_error
