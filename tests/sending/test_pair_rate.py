"""Meta's pair rate (about one message per 6 s to the same user, error 131056) and pacing that
never holds one number's sends behind another's, on real Redis."""

import pytest
import responses
from django.utils import timezone

from tests.meta import GRAPH
from tests.sending.conftest import PHONE
from tests.sending.test_sending import (
    LEAD,
    S,
    queue,
    template_body,
)
from whatsapp.models import OutboundEvent, OutboundMessage
from whatsapp.sending import pacing
from whatsapp.sending.worker import outbound_send

pytestmark = pytest.mark.django_db


def test_a_second_message_to_the_same_recipient_waits_for_the_pair_window(
        api, org, number, template, sending_on, graph, settings):
    settings.WHATSAPP_PAIR_RATE_SECONDS = 6
    first = queue(api, template_body(idempotencyKey="a"))
    second = queue(api, template_body(idempotencyKey="b"))
    other = queue(api, template_body(idempotencyKey="c", to="5511912345678"))
    assert outbound_send(first.pk).status == S.ACCEPTED

    outcome = outbound_send(second.pk)
    # Deferred, not failed, and without using up an attempt; Graph was not called for it.
    assert outcome.status == "paced" and 5 < outcome.retry_in <= 6
    second.refresh_from_db()
    assert (second.status, second.attempts) == (S.QUEUED, 0)
    assert second.next_attempt_at > timezone.now()
    # Another recipient of the same number goes at once.
    assert outbound_send(other.pk).status == S.ACCEPTED
    assert [c.request.url.split("/")[-2] for c in graph.calls] == [PHONE, PHONE]

    # Once the pair window is over, the deferred send goes.
    pacing.redis_client().delete(pacing._pair_key(PHONE, LEAD))
    OutboundMessage.objects.filter(pk=second.pk).update(next_attempt_at=timezone.now())
    assert outbound_send(second.pk).status == S.ACCEPTED


def test_a_deferred_recipient_never_uses_up_its_numbers_slots(settings):
    settings.WHATSAPP_PAIR_RATE_SECONDS = 6
    assert pacing.slot_take("304777", 2, recipient="5511900000001")[0]
    # The same recipient is held back many times: the number's window is untouched.
    for _ in range(5):
        assert not pacing.slot_take("304777", 2, recipient="5511900000001")[0]
    assert pacing.slot_take("304777", 2, recipient="5511900000002")[0]
    assert not pacing.slot_take("304777", 2, recipient="5511900000003")[0]  # the limit, 2/s


def test_error_131056_reschedules_the_send_after_the_pair_window(
        api, org, number, template, sending_on, settings):
    settings.WHATSAPP_PAIR_RATE_SECONDS = 6
    message = queue(api, template_body())
    with responses.RequestsMock() as rsps:
        rsps.post(f"{GRAPH}/{PHONE}/messages", status=400, json={"error": {
            "message": "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            "type": "OAuthException", "code": 131056}})
        outcome = outbound_send(message.pk)
    assert outcome.status == "retry" and outcome.retry_in == 6
    message.refresh_from_db()
    assert message.status == S.QUEUED and message.error_code == 131056
    assert 5 < (message.next_attempt_at - timezone.now()).total_seconds() <= 6
    assert OutboundEvent.objects.filter(message=message, event="pair_rate_rescheduled").exists()
    # The recipient's gate is closed for the window: an early retry is deferred, not sent.
    OutboundMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    assert outbound_send(message.pk).status == "paced"

    pacing.redis_client().delete(pacing._pair_key(PHONE, LEAD))
    OutboundMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    with responses.RequestsMock() as rsps:
        rsps.post(f"{GRAPH}/{PHONE}/messages", json={"messages": [{"id": "wamid.LATER"}]})
        assert outbound_send(message.pk).status == S.ACCEPTED
    message.refresh_from_db()
    assert (message.status, message.wamid) == (S.ACCEPTED, "wamid.LATER")


def test_a_busy_number_hands_its_send_back_instead_of_holding_the_worker(
        api, org, number, template, sending_on, graph, settings):
    """A worker asleep on one number's full window would hold every other number's sends
    queued behind it: past a short wait, the send goes back to the queue."""
    settings.WHATSAPP_THROUGHPUT_MPS = 1
    settings.WHATSAPP_PACING_MAX_WAIT_SECONDS = 0.25
    first = queue(api, template_body(idempotencyKey="a"))
    second = queue(api, template_body(idempotencyKey="b", to="5511912345678"))
    assert outbound_send(first.pk).status == S.ACCEPTED
    outcome = outbound_send(second.pk)
    # Not slept through (it would have been sent): back to the queue for the rest of the wait.
    assert outcome.status == "paced" and 0.25 < outcome.retry_in <= 1.1  # 1 s + the margin
    assert len(graph.calls) == 1
