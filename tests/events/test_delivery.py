"""HTTP delivery: signed, in order per conversation, retried, dead-lettered, replayed; and the
in-process subscribers, each in its own task."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.events.receiver import SECRET, receiving, verify
from tests.factories import ContactFactory
from tests.ingest_support import run_command
from whatsapp import events as lead_events_api
from whatsapp.events import facts
from whatsapp.events.delivery import dispatch
from whatsapp.events.outbox import emit
from whatsapp.events.subscribers import unsubscribe
from whatsapp.models import LeadEvent
from whatsapp.tasks import run_lead_event_subscriber

pytestmark = pytest.mark.django_db

SEEN: list[str] = []


def record(event: dict) -> None:
    SEEN.append(event["id"])


def explode(event: dict) -> None:
    SEEN.append("explode")
    raise RuntimeError("subscriber bug")


@pytest.fixture
def two_leads(lead_events):
    a, b = ContactFactory(), ContactFactory()
    a1 = emit(facts.contact_created(a))[0]
    a2 = emit(facts.human_takeover(a, timezone.now()))[0]
    b1 = emit(facts.contact_created(b))[0]
    return a1, a2, b1


def due_now(*rows: LeadEvent) -> None:
    """Time passes: the events' retries are due."""
    LeadEvent.objects.filter(pk__in=[r.pk for r in rows]).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_the_receiver_verifies_the_signature_and_refuses_a_tampered_body(two_leads, settings,
                                                                         broker):
    with receiving() as receiver:
        settings.LEAD_EVENTS_URL = receiver.url
        assert dispatch() == 3
    got = receiver.got[0]
    assert got.valid
    event = verify(SECRET, got.headers, got.body)
    assert event["id"] == got.headers["webhook-id"] == str(two_leads[0].pk)
    assert (event["type"], event["sequence"], event["version"]) == ("contact.created", 1, 1)
    tampered = got.body.replace(b'"sequence":1', b'"sequence":7')
    with pytest.raises(ValueError, match="bad signature"):
        verify(SECRET, got.headers, tampered)
    with pytest.raises(ValueError, match="timestamp"):
        verify(SECRET, got.headers, got.body, now=int(got.headers["webhook-timestamp"]) + 3600)


def test_a_failing_event_holds_its_conversation_only(two_leads, settings, broker):
    a1, a2, b1 = two_leads
    with receiving(script=[500]) as receiver:
        settings.LEAD_EVENTS_URL = receiver.url
        dispatch()
        # a1 failed: a2 waits behind it, b1 (another conversation) went through.
        assert [g.event["id"] for g in receiver.got] == [str(a1.pk), str(b1.pk)]
        a1.refresh_from_db()
        assert (a1.delivery, a1.attempts, a1.last_error) == ("pending", 1, "HTTP 500")
        assert broker.countdowns("deliver_lead_events") == [60]

        due_now(a1)
        dispatch()
    assert [e["id"] for e in receiver.acknowledged()] == [str(b1.pk), str(a1.pk), str(a2.pk)]
    # Every attempt of an event is the same bytes under the same webhook-id.
    bodies = {g.body for g in receiver.got if g.event["id"] == str(a1.pk)}
    assert len(bodies) == 1
    assert set(LeadEvent.objects.values_list("delivery", flat=True)) == {"delivered"}


def test_an_event_dead_after_its_retries_is_replayed_by_the_command(two_leads, settings,
                                                                    broker):
    a1, a2, b1 = two_leads
    with receiving() as receiver:
        settings.LEAD_EVENTS_URL = receiver.url
        receiver.refuse = {str(a1.pk)}
        dispatch()
        for _ in range(2):
            due_now(a1)
            dispatch()
        a1.refresh_from_db()
        assert (a1.delivery, a1.attempts) == ("dead", 3)  # 1 + len(schedule [60, 600])
        due_now(a2)
        dispatch()
        assert not any(g.event["id"] == str(a2.pk) for g in receiver.got)  # held behind a1

        assert run_command("replay_lead_events", "--dry-run", "--all")["matched"] == 1
        receiver.refuse.clear()  # the receiver is fixed
        result = run_command("replay_lead_events", "--ids", str(a1.pk))
        assert result["replayed"] == 1
        dispatch()
    acknowledged = [e["id"] for e in receiver.acknowledged()]
    assert acknowledged == [str(b1.pk), str(a1.pk), str(a2.pk)]


def test_replay_command_refuses_an_empty_selection_and_bad_ids(db):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="Select something"):
        call_command("replay_lead_events")
    with pytest.raises(CommandError, match="UUIDs"):
        call_command("replay_lead_events", "--ids", "12")


def test_each_subscriber_runs_in_its_own_task_and_a_failing_one_retries_alone(
        lead_events, settings, broker):
    settings.LEAD_EVENTS_URL = ""
    SEEN.clear()
    lead_events_api.subscribe("contact.created", record)
    lead_events_api.subscribe("*", "tests.events.test_delivery.explode")
    try:
        event = emit(facts.contact_created(ContactFactory()))[0]
        dispatch()
        runs = broker.of("run_lead_event_subscriber")
        assert sorted(runs) == sorted([(str(event.pk), "tests.events.test_delivery.record"),
                                       (str(event.pk), "tests.events.test_delivery.explode")])
        assert LeadEvent.objects.get().fanned_out
        dispatch()  # handed out once
        assert len(broker.of("run_lead_event_subscriber")) == 2

        assert run_lead_event_subscriber(*runs[0] if "record" in runs[0][1] else runs[1])
        assert SEEN == [str(event.pk)]
        # The failing one retries on its own (here run in-process: 1 run + 2 retries), then
        # gives up; the other subscriber already had its event.
        settings.LEAD_EVENT_SUBSCRIBER_RETRIES = 2
        outcome = run_lead_event_subscriber.apply(
            args=(str(event.pk), "tests.events.test_delivery.explode"))
        assert outcome.get() is False
        assert SEEN == [str(event.pk), "explode", "explode", "explode"]
    finally:
        unsubscribe("contact.created", "tests.events.test_delivery.record")
        unsubscribe("*", "tests.events.test_delivery.explode")


def test_an_unreachable_receiver_is_a_retry_with_no_url_in_the_error(two_leads, broker):
    dispatch()  # lead_events points at port 9: nothing listens
    a1 = LeadEvent.objects.get(pk=two_leads[0].pk)
    assert (a1.delivery, a1.attempts, a1.last_error) == ("pending", 1, "ConnectionError")
    assert "127.0.0.1" not in json.dumps([e.last_error for e in LeadEvent.objects.all()])
