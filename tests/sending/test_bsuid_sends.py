"""Sends to username-only leads (Graph `recipient`, META-PLATFORM §0), the phone-number
request, and the BSUID Meta answers, kept on the lead."""

import json
import re
from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from tests.factories import ContactFactory, ContactIdentityFactory
from tests.meta import GRAPH
from tests.sending import test_sending as base
from whatsapp.models import ContactIdentity, OutboundMessage
from whatsapp.sending.worker import outbound_send

pytestmark = pytest.mark.django_db
BSUID = "BR.5512093847561029384"


@pytest.fixture
def meta_answers_user_id():
    """Graph's send endpoint answering the recipient's BSUID, as Meta does since 2026."""
    def accept(request):
        body = json.loads(request.body)
        contact = ({"input": body["to"], "wa_id": body["to"], "user_id": BSUID} if "to" in body
                   else {"input": body["recipient"], "user_id": BSUID})
        return 200, {}, json.dumps({"messaging_product": "whatsapp", "contacts": [contact],
                                    "messages": [{"id": f"wamid.B{len(rsps.calls)}"}]})

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.POST, re.compile(rf"{re.escape(GRAPH)}/\d+/messages"),
                          callback=accept, content_type="application/json")
        yield rsps


def username_lead(org, **extra):
    contact = ContactFactory(organization=org, wa_id="", user_id=BSUID, username="carla.imoveis",
                             last_inbound_at=timezone.now() - timedelta(hours=1), **extra)
    ContactIdentityFactory(contact=contact)
    return contact


def graph_bodies(rsps) -> list[dict]:
    return [json.loads(c.request.body) for c in rsps.calls]


def test_a_username_only_lead_is_answered_through_recipient(api, org, number, sending_on,
                                                            meta_answers_user_id):
    contact = username_lead(org)
    message = base.queue(api, {"type": "text", "contactId": contact.pk, "text": "Olá, Carla!"})
    assert (message.to, message.recipient_user_id) == ("", BSUID)
    assert outbound_send(message.pk).status == OutboundMessage.Status.ACCEPTED
    body = graph_bodies(meta_answers_user_id)[-1]
    assert body["recipient"] == BSUID and "to" not in body
    assert body["text"] == {"body": "Olá, Carla!", "preview_url": False}


def test_the_phone_request_is_metas_interactive_message(api, org, number, sending_on,
                                                        meta_answers_user_id):
    contact = username_lead(org)
    response = api.post(f"/api/v1/whatsapp/contacts/{contact.pk}/request-phone", {},
                        format="json")
    assert response.status_code == 202, response.json()
    message = OutboundMessage.objects.get(pk=response.json()["message"]["id"])
    assert outbound_send(message.pk).status == OutboundMessage.Status.ACCEPTED
    body = graph_bodies(meta_answers_user_id)[-1]
    assert body["recipient"] == BSUID and body["type"] == "interactive"
    assert body["interactive"] == {
        "type": "request_contact_info", "action": {"name": "request_contact_info"},
        "body": {"text": "Para continuar, compartilhe seu número de telefone: toque no botão "
                         "abaixo."}}


def test_the_phone_request_needs_the_service_window(api, org, number, sending_on):
    contact = username_lead(org)
    contact.last_inbound_at = timezone.now() - timedelta(hours=30)
    contact.save()
    response = api.post(f"/api/v1/whatsapp/contacts/{contact.pk}/request-phone",
                        {"text": "Qual o seu telefone?"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "window_closed"
    assert not OutboundMessage.objects.exists()


def test_the_bsuid_meta_answers_is_kept_on_a_phone_only_lead(api, org, number, sending_on,
                                                             meta_answers_user_id):
    contact = ContactFactory(organization=org, wa_id=base.LEAD, user_id="",
                             last_inbound_at=timezone.now() - timedelta(hours=1))
    ContactIdentityFactory(contact=contact, kind="phone", value=base.LEAD)
    message = base.queue(api, {"type": "text", "to": base.LEAD, "text": "Oi!"})
    assert outbound_send(message.pk).status == OutboundMessage.Status.ACCEPTED
    contact.refresh_from_db()
    assert (contact.wa_id, contact.user_id) == (base.LEAD, BSUID)
    assert set(ContactIdentity.objects.values_list("kind", "value")) == {
        ("phone", base.LEAD), ("user_id", BSUID)}
