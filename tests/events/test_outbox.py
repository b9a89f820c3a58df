"""Each fact writes its lead event in its own transaction, numbered per conversation."""

import json

import pytest
from django.db import transaction

from tests.factories import (
    ConnectionFactory,
    ContactIdentityFactory,
    OutboundMessageFactory,
    fixture_numbers,
)
from tests.ingest_support import deliver
from tests.meta import change_value, load
from whatsapp.events import facts
from whatsapp.events.outbox import emit
from whatsapp.models import Connection, Contact, LeadEvent, Message
from whatsapp.onboarding.connections import connection_disconnect

pytestmark = pytest.mark.django_db

MARIANA = "BR.7460193528461029384"


@pytest.fixture
def numbers(db):
    return fixture_numbers()


def stream_of(contact: Contact) -> list[tuple[int, str]]:
    return list(LeadEvent.objects.filter(stream=f"contact:{contact.pk}")
                .order_by("sequence").values_list("sequence", "type"))


def test_inbound_message_writes_lead_created_then_message_received(
        client, numbers, lead_events, broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        deliver(client, load("messages_text_inbound.json"))

    contact = Contact.objects.get()
    assert stream_of(contact) == [(1, "contact.created"), (2, "message.received")]
    received = LeadEvent.objects.get(type="message.received")
    assert received.organization == numbers["A"].organization
    assert received.delivery == LeadEvent.Delivery.PENDING
    data = received.data
    assert data["message"]["id"] == Message.objects.get().pk
    assert data["message"]["text"].startswith("Olá! Vi o anúncio")
    assert data["contact"] == {"id": contact.pk, "phone": "5511987654321", "user_id": MARIANA,
                               "username": None, "profile_name": "Mariana Souza",
                               "saved_name": None, "referral": None, "human_takeover": False}
    assert data["phone_number"]["phone_number_id"] == "304000000000101"
    # The dispatcher is woken once the delivery's transaction committed.
    assert broker.of("deliver_lead_events") == [()]


def test_a_redelivered_message_writes_no_second_event(client, numbers, lead_events):
    deliver(client, load("messages_text_inbound.json"))
    deliver(client, load("messages_text_inbound.json"))

    assert LeadEvent.objects.filter(type="message.received").count() == 1
    assert LeadEvent.objects.count() == 2


def test_events_of_one_conversation_are_numbered_in_order(client, numbers, lead_events):
    body = load("messages_text_inbound.json")
    deliver(client, body)
    for n in range(3):
        later = json.loads(json.dumps(body))
        message = change_value(later)["messages"][0]
        message["id"] = f"wamid.next-{n}"
        message["timestamp"] = str(1790000200 + n)
        message["text"]["body"] = f"Mensagem {n}"
        deliver(client, later)

    contact = Contact.objects.get()
    events = LeadEvent.objects.filter(stream=f"contact:{contact.pk}").order_by("sequence")
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    assert [e.data["message"]["text"] for e in events[2:]] == ["Mensagem 0", "Mensagem 1",
                                                               "Mensagem 2"]


def test_a_phone_only_lead_that_shows_its_bsuid_is_identified(client, numbers, lead_events):
    deliver(client, load("messages_text_inbound_pre_bsuid.json"))
    deliver(client, load("messages_text_inbound.json"))

    contact = Contact.objects.get()
    assert stream_of(contact) == [(1, "contact.created"), (2, "message.received"),
                                  (3, "contact.identified"), (4, "message.received")]
    identified = LeadEvent.objects.get(type="contact.identified").data
    assert identified["previous"] == {"phone": "5511987654321", "user_id": None}
    assert identified["contact"]["user_id"] == MARIANA


def test_an_echo_is_a_human_takeover_once(client, numbers, lead_events):
    deliver(client, load("smb_message_echoes_text.json"))
    again = load("smb_message_echoes_text.json")
    change_value(again)["message_echoes"][0]["id"] = "wamid.echo-2"
    change_value(again)["message_echoes"][0]["timestamp"] = "1790001300"
    deliver(client, again)

    contact = Contact.objects.get()
    assert stream_of(contact) == [(1, "contact.created"), (2, "conversation.human_takeover")]
    assert LeadEvent.objects.get(type="conversation.human_takeover").data["contact"][
        "human_takeover"] is True


def test_a_status_of_our_send_is_a_message_status_event(client, numbers, lead_events):
    contact = ContactIdentityFactory(contact__organization=numbers["A"].organization,
                                     contact__wa_id="5511987654321", contact__user_id=MARIANA
                                     ).contact
    OutboundMessageFactory(organization=numbers["A"].organization, config=numbers["A"],
                           contact=contact, to="5511987654321",
                           wamid="wamid.GA1PVVQtQS0wMDAxFQIAEhgUT1VULUEtMDAwMQ==",
                           status="accepted")
    deliver(client, load("messages_status_sent.json"))

    event = LeadEvent.objects.get(type="message.status")
    assert event.stream == f"contact:{contact.pk}"
    assert event.data["message"]["status"] == "sent"


def test_a_disconnection_is_a_connection_status_event_without_secrets(lead_events):
    connection = ConnectionFactory()
    connection.set_access_token("EAAsecret-token-never-in-events")
    connection.save()
    with transaction.atomic():
        connection_disconnect(waba_id=connection.waba_id, reason="PARTNER_REMOVED")

    event = LeadEvent.objects.get()
    assert (event.type, event.stream, event.sequence) == (
        "connection.status", f"connection:{connection.pk}", 1)
    assert event.data["connection"]["status"] == Connection.Status.DISCONNECTED
    assert "EAAsecret" not in json.dumps(event.data)


def test_an_event_rolls_back_with_its_fact(numbers, lead_events):
    contact = Contact.objects.create(organization=numbers["A"].organization, wa_id="5511900000001")
    with pytest.raises(RuntimeError), transaction.atomic():
        emit(facts.contact_created(contact))
        raise RuntimeError("the fact failed")
    emit(facts.contact_created(contact))

    # The rolled-back event took no number either: the next one is still #1.
    assert list(LeadEvent.objects.values_list("sequence", flat=True)) == [1]


def test_without_lead_events_url_events_are_kept_but_not_sent(
        client, numbers, settings, broker, django_capture_on_commit_callbacks):
    settings.LEAD_EVENTS_URL = ""
    with django_capture_on_commit_callbacks(execute=True):
        deliver(client, load("messages_text_inbound.json"))

    assert set(LeadEvent.objects.values_list("delivery", flat=True)) == {"none"}
    assert broker.of("deliver_lead_events") == []
