"""The batch sender (whatsapp/sending/batch.py): a number's sends announced once, claimed,
checked, paced and recorded many at a time, with every guarantee of the one-send path (each
send on its own: refused, failed, deferred or accepted; never above the number's limit)."""

import json
import re

import pytest
import responses
from django.utils import timezone

from tests.meta import GRAPH
from tests.sending.conftest import PHONE
from tests.sending.test_sending import LEAD, S, queue, status_webhook, template_body
from tests.support import busiest_second, times_from_processes
from whatsapp.models import (
    FeatureFlag,
    FeatureFlagOverride,
    Message,
    OutboundEvent,
    OutboundMessage,
    SendPolicy,
)
from whatsapp.sending import pacing
from whatsapp.sending.batch import outbound_drain
from whatsapp.sending.rules import SENDING_FLAG

pytestmark = pytest.mark.django_db


def recipients(n: int) -> list[str]:
    return [f"55119000000{i:02d}" for i in range(n)]


@pytest.mark.django_db(transaction=True)
def test_sends_queued_together_announce_their_number_once(org, number, template, sending_on, graph,
                                                          broker):
    from django.db import transaction

    from whatsapp.sending import rules
    from whatsapp.sending.queue import outbound_queue

    def send(to: str) -> None:
        outbound_queue(organization=org, request=rules.SendRequest(
            kind="template", to=to, template_name=template.name, template_language="pt_BR",
            body_parameters=["Mariana", "amanhã"]))

    with transaction.atomic():  # a campaign queued in one transaction
        for to in recipients(3):
            send(to)
        assert broker.of("send_outbound_number") == []  # not before the commit
    assert broker.of("send_outbound_number") == [(str(number.pk),)]
    send("5511912345677")  # a drain is on its way: this one rides along
    assert broker.of("send_outbound_number") == [(str(number.pk),)]
    assert broker.of("send_outbound") == []
    # Once the drain has started, the next send announces the number again.
    outbound_drain(number.pk)
    send("5511912345678")
    assert broker.of("send_outbound_number") == [(str(number.pk),)] * 2
    # A rolled-back transaction announces nothing, and forgets nothing for the next one.
    outbound_drain(number.pk)
    with pytest.raises(RuntimeError), transaction.atomic():
        send("5511912345679")
        raise RuntimeError
    assert broker.of("send_outbound_number") == [(str(number.pk),)] * 2
    with transaction.atomic():
        send("5511912345680")
    assert broker.of("send_outbound_number") == [(str(number.pk),)] * 3


def test_a_drain_sends_each_once_with_its_audit_and_conversation_message(
        api, org, number, template, sending_on, graph):
    messages = [queue(api, template_body(to=to)) for to in recipients(5)]
    assert outbound_drain(number.pk).sent == 5
    assert outbound_drain(number.pk).sent == 0  # a second drain finds nothing: sent once
    assert len(graph.calls) == 5
    for message in messages:
        message.refresh_from_db()
        assert message.status == S.ACCEPTED and message.wamid and message.attempts == 1
        assert message.graph_called_at is not None
        events = list(OutboundEvent.objects.filter(message=message)
                      .order_by("id").values_list("event", flat=True))
        assert events == ["queued", "accepted"]
        assert Message.objects.get(wamid=message.wamid).direction == "outbound"


def test_one_refused_and_one_failed_send_do_not_fail_the_others_of_their_batch(
        api, org, number, template, sending_on, settings):
    ok, refused, failing, ok2 = (queue(api, template_body(to=to)) for to in recipients(4))
    # Between queueing and sending, the allowlist leaves `refused` out.
    SendPolicy.objects.filter(organization=org).update(
        allowlist=[ok.to, failing.to, ok2.to])

    def answer(request):
        if json.loads(request.body)["to"] == failing.to:
            return 400, {}, json.dumps({"error": {"code": 131026, "message": "undeliverable"}})
        return 200, {}, json.dumps({"messages": [{"id": f"wamid.B{len(rsps.calls)}"}]})

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, re.compile(rf"{re.escape(GRAPH)}/\d+/messages"),
                          callback=answer)
        assert outbound_drain(number.pk).sent == 2
        assert len(rsps.calls) == 3
    statuses = {m.pk: m.status for m in OutboundMessage.objects.all()}
    assert statuses == {ok.pk: S.ACCEPTED, refused.pk: S.BLOCKED, failing.pk: S.FAILED,
                        ok2.pk: S.ACCEPTED}
    assert OutboundEvent.objects.filter(message=refused, event="blocked").exists()
    assert OutboundEvent.objects.filter(message=failing, event="failed").exists()


def test_the_kill_switch_cancels_the_batch_without_calling_graph(api, org, number, template,
                                                                  sending_on):
    messages = [queue(api, template_body(to=to)) for to in recipients(3)]
    flag = FeatureFlag.objects.create(name=SENDING_FLAG)
    FeatureFlagOverride.objects.create(flag=flag, organization=org, enabled=False)
    with responses.RequestsMock() as rsps:
        assert outbound_drain(number.pk).sent == 0
        assert not rsps.calls
    assert {m.status for m in OutboundMessage.objects.filter(pk__in=[m.pk for m in messages])
            } == {S.CANCELLED}


def test_a_full_window_queues_the_rest_again_and_says_when_to_come_back(
        api, org, number, template, sending_on, graph, settings):
    settings.WHATSAPP_THROUGHPUT_MPS = 2
    messages = [queue(api, template_body(to=to)) for to in recipients(5)]
    drained = outbound_drain(number.pk)
    assert drained.sent == 2 and len(graph.calls) == 2
    assert 0 < drained.again_in <= 1.1  # one second plus the margin: when a slot frees
    waiting = OutboundMessage.objects.filter(pk__in=[m.pk for m in messages], status=S.QUEUED)
    assert waiting.count() == 3
    # Held back by the pacer, not a failed attempt.
    assert set(waiting.values_list("attempts", flat=True)) == {0}


def test_a_second_send_to_the_same_recipient_in_one_batch_waits_for_its_pair_window(
        api, org, number, template, sending_on, graph, settings, broker):
    settings.WHATSAPP_PAIR_RATE_SECONDS = 6
    first = queue(api, template_body(idempotencyKey="a"))
    second = queue(api, template_body(idempotencyKey="b"))
    other = queue(api, template_body(idempotencyKey="c", to="5511912345678"))
    assert outbound_drain(number.pk).sent == 2
    second.refresh_from_db()
    assert second.status == S.QUEUED and second.attempts == 0
    assert 5 < (second.next_attempt_at - timezone.now()).total_seconds() <= 6
    # It comes back on its own (the one-send task) when the pair window ends.
    assert broker.of("send_outbound") == [(str(second.pk),)]
    assert 5 < broker.countdowns("send_outbound")[0] < 6.1
    assert {first.to, other.to} == {json.loads(c.request.body)["to"] for c in graph.calls}


def test_error_131056_in_a_batch_reschedules_only_that_send(
        api, org, number, template, sending_on, settings, broker):
    settings.WHATSAPP_PAIR_RATE_SECONDS = 6
    limited, fine = (queue(api, template_body(to=to)) for to in recipients(2))

    def answer(request):
        if json.loads(request.body)["to"] == limited.to:
            return 400, {}, json.dumps({"error": {"code": 131056, "message": "pair rate"}})
        return 200, {}, json.dumps({"messages": [{"id": "wamid.FINE"}]})

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, re.compile(rf"{re.escape(GRAPH)}/\d+/messages"),
                          callback=answer)
        assert outbound_drain(number.pk).sent == 1
    limited.refresh_from_db()
    fine.refresh_from_db()
    assert (limited.status, limited.error_code) == (S.QUEUED, 131056)
    assert fine.status == S.ACCEPTED
    assert broker.of("send_outbound") == [(str(limited.pk),)]
    assert OutboundEvent.objects.filter(message=limited, event="pair_rate_rescheduled").exists()


def test_a_status_that_beats_the_batch_is_kept(api, client, org, number, template, sending_on,
                                               graph):
    message = queue(api, template_body())
    assert status_webhook(client, wamid="wamid.TEST0001", status="delivered") == "processed"
    assert outbound_drain(number.pk).sent == 1
    assert Message.objects.get(wamid="wamid.TEST0001").status == "delivered"
    message.refresh_from_db()
    assert message.wamid == "wamid.TEST0001"


def test_the_bsuid_meta_answers_is_learned_from_a_batch(api, org, number, template, sending_on):
    from tests.sending.test_sending import lead

    contact = lead(org)
    queue(api, template_body(to=LEAD))
    with responses.RequestsMock() as rsps:
        rsps.post(f"{GRAPH}/{PHONE}/messages", json={
            "contacts": [{"input": LEAD, "wa_id": LEAD, "user_id": "BR.1234567890"}],
            "messages": [{"id": "wamid.U1"}]})
        assert outbound_drain(number.pk).sent == 1
    contact.refresh_from_db()
    assert contact.user_id == "BR.1234567890"


def _take_batches(phone: str, limit: int, count: int, out) -> None:
    """Takes `count` slots, up to 7 per Redis call, as drains on other hosts do."""
    import time

    from whatsapp.sending import pacing

    times: list[float] = []
    while len(times) < count:
        slots = pacing.slots_take(phone, limit, [""] * min(7, count - len(times)))
        granted = [at.timestamp() for at, _wait, _why in slots if at is not None]
        times += granted
        if not granted:
            time.sleep(min(wait for _at, wait, _why in slots))
    out.put(times)


def test_batched_slots_never_exceed_the_limit_across_processes():
    """4 OS processes taking slots of one number in batches at once: Redis is the only shared
    state, and no one-second window holds more than the limit."""
    times = times_from_processes(_take_batches, ("304888", 20, 25))
    assert len(times) == 100
    assert busiest_second(times) <= 20


def test_batched_slots_skip_a_closed_recipient_without_using_its_slot(settings):
    settings.WHATSAPP_PAIR_RATE_SECONDS = 6
    first = pacing.slots_take("304777", 3, ["5511900000001"])
    assert first[0][0] is not None
    slots = pacing.slots_take("304777", 3, ["5511900000001", "5511900000002", "",
                                            "5511900000003"])
    assert [why for _at, _wait, why in slots] == [pacing.RECIPIENT, "", "", pacing.NUMBER]
    assert slots[0][1] > 5  # the pair window's rest


def test_the_sweeper_announces_the_number_of_sends_never_taken(api, org, number, template,
                                                               sending_on, broker):
    from datetime import timedelta

    from whatsapp.sending.worker import outbound_sweep

    old = [queue(api, template_body(to=to)) for to in recipients(3)]
    OutboundMessage.objects.filter(pk__in=[m.pk for m in old]).update(
        created_at=timezone.now() - timedelta(minutes=2))
    broker.clear()
    assert outbound_sweep() == 3
    # One drain of the number takes them all, in order; never one task per send.
    assert broker.of("send_outbound_number") == [(str(number.pk),)]
    assert broker.of("send_outbound") == []


def test_a_round_takes_its_slots_only_as_its_calls_go_out(api, org, number, template,
                                                          sending_on, settings):
    """Slots are not held ahead of the calls: when a call reaches Graph, the number's window
    holds only the slots of the rounds already sent and its own."""
    settings.WHATSAPP_SEND_CONCURRENCY = 2
    for to in recipients(5):
        queue(api, template_body(to=to))
    window = pacing._key(PHONE)
    seen = []

    def answer(request):
        seen.append(pacing.redis_client().zcard(window))
        return 200, {}, json.dumps({"messages": [{"id": f"wamid.R{len(seen)}"}]})

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, re.compile(rf"{re.escape(GRAPH)}/\d+/messages"),
                          callback=answer)
        assert outbound_drain(number.pk).sent == 5
    assert sorted(seen) == [2, 2, 4, 4, 5]
