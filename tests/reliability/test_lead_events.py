"""Lead events against real gunicorn, PostgreSQL, Redis and Celery workers (issue 19): an
inbound message POSTed to the real webhook URL reaches a local HTTP receiver exactly once and
in order per conversation, through two 500s and a worker SIGKILLed mid-send; a takeover that
times out is handed back, both as events. Select with `-m worker`; `-s` prints the times."""

import os
import signal
import time

import pytest

from tests.events.receiver import SECRET, receiving
from tests.factories import fixture_numbers
from tests.meta import change_value, load, wire
from tests.reliability.conftest import post, wait_until
from whatsapp.models import LeadEvent

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def lead_events_env(stack, receiver, **extra) -> None:
    stack.env.update({
        "LEAD_EVENTS_URL": receiver.url,
        "LEAD_EVENTS_SECRET": SECRET,
        # Retries in half a second, so the backoff plays out in the test's time.
        "LEAD_EVENTS_RETRY_SCHEDULE": "0.5,0.5,0.5,0.5,0.5,0.5",
        # Long enough for the test to kill the worker while the receiver holds the request.
        "LEAD_EVENTS_TIMEOUT_SECONDS": "60",
        **extra,
    })


def inbound(n: int) -> bytes:
    body = load("messages_text_inbound.json")
    message = change_value(body)["messages"][0]
    message["id"] = f"wamid.lead-events-{n}"
    message["timestamp"] = str(1790000100 + n)
    message["text"]["body"] = f"Mensagem {n}"
    return wire(body)


def sweep_until(stack, condition, *, timeout: float, message: str) -> None:
    """What beat does every 30 s (the lead event sweep), once a second until `condition`."""
    def swept() -> object:
        if condition():
            return True
        stack.send("whatsapp.tasks.sweep_lead_events")
        return False

    wait_until(swept, timeout=timeout, interval=1.0, message=message)


def test_an_inbound_message_reaches_the_receiver_once_in_order_through_500s_and_a_kill(stack):
    fixture_numbers()
    # contact.created is answered 500, 500, then held until the worker is killed mid-send.
    with receiving(script=[500, 500, "hang"]) as receiver:
        lead_events_env(stack, receiver)
        stack.start_web()
        worker = stack.start_worker(concurrency=2)
        assert post(stack.web_url, inbound(1)).status_code == 200
        wait_until(receiver.hanging.is_set, timeout=60, message="the third attempt in flight")

        # A receiver that hangs holds no ingestion: two more messages are stored meanwhile.
        for n in (2, 3):
            assert post(stack.web_url, inbound(n)).status_code == 200
        wait_until(lambda: LeadEvent.objects.count() == 4, timeout=60,
                   message="every message's event written while a send hangs")

        killed_at = time.monotonic()
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        receiver.release()
        stack.start_worker("worker2")
        sweep_until(stack, lambda: len(receiver.acknowledged()) >= 4, timeout=90,
                    message="every event acknowledged after the kill")
        print(f"\nmeasure: worker SIGKILL mid-send → 4 events acknowledged in "
              f"{time.monotonic() - killed_at:.1f} s")
        # Nothing more comes: another sweep (a late redelivery of the killed task) finds
        # nothing due.
        requests_so_far = len(receiver.got)
        last = stack.send("whatsapp.tasks.sweep_lead_events")
        wait_until(lambda: stack.task_finished(last), timeout=30, message="last sweep ran")
        assert len(receiver.got) == requests_so_far

    acknowledged = receiver.acknowledged()
    assert [(e["type"], e["sequence"]) for e in acknowledged] == [
        ("contact.created", 1), ("message.received", 2), ("message.received", 3),
        ("message.received", 4)]
    assert [e["data"]["message"]["text"] for e in acknowledged[1:]] == [
        "Mensagem 1", "Mensagem 2", "Mensagem 3"]
    assert len({e["id"] for e in acknowledged}) == 4  # each event exactly once
    assert all(g.valid for g in receiver.got)  # every request carried a good signature
    first = [g for g in receiver.got if g.event["id"] == acknowledged[0]["id"]]
    assert len(first) == 4  # 500, 500, killed mid-send, 200: one webhook-id throughout
    # No event of the conversation was sent before the one before it was acknowledged.
    for later in acknowledged[1:]:
        arrived = next(i for i, g in enumerate(receiver.got) if g.event["id"] == later["id"])
        acked_before = [g.event["sequence"] for g in receiver.got[:arrived]
                        if g.answered == 200]
        assert acked_before and max(acked_before) == later["sequence"] - 1
    assert set(LeadEvent.objects.values_list("delivery", flat=True)) == {"delivered"}


def test_a_takeover_that_times_out_is_handed_back_with_both_events(stack):
    fixture_numbers()
    with receiving() as receiver:
        # A takeover ends after 2 s without a phone-app message.
        lead_events_env(stack, receiver, WHATSAPP_HUMAN_TAKEOVER_HOURS=str(2 / 3600))
        stack.start_web()
        stack.start_worker()
        echo = load("smb_message_echoes_text.json")
        change_value(echo)["message_echoes"][0]["timestamp"] = str(int(time.time()))
        assert post(stack.web_url, wire(echo)).status_code == 200
        wait_until(lambda: any(e["type"] == "conversation.human_takeover"
                               for e in receiver.acknowledged()), timeout=60,
                   message="the takeover event")

        def handed_back() -> bool:
            if any(e["type"] == "conversation.handed_back" for e in receiver.acknowledged()):
                return True
            stack.send("whatsapp.tasks.expire_human_takeovers")  # what beat does every 5 min
            return False

        wait_until(handed_back, timeout=60, interval=1.0, message="the hand-back event")

    events = receiver.acknowledged()
    assert [e["type"] for e in events] == ["contact.created", "conversation.human_takeover",
                                           "conversation.handed_back"]
    assert [e["sequence"] for e in events] == [1, 2, 3]
    assert events[2]["data"]["by"] == "timeout"
    assert events[2]["data"]["contact"]["human_takeover"] is False
