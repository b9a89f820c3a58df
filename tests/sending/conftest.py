"""Fixtures of the sending tests: sending switched on, the tenant's number and an approved
template, and Graph's send endpoint answering like Meta."""

import itertools
import json
import re

import pytest
import responses

from tests.factories import PhoneNumberFactory
from tests.meta import GRAPH
from whatsapp.models import MessageTemplate, SendPolicy

WABA, PHONE = "102000000000101", "304000000000101"


@pytest.fixture
def sending_on(settings, org):
    settings.WHATSAPP_SEND_MODE = "enabled"
    SendPolicy.objects.create(organization=org, mode="enabled")


@pytest.fixture
def number(org):
    return PhoneNumberFactory(connection__organization=org, connection__waba_id=WABA,
                              connection__with_token=True, connection__token="EAAbusiness-token",
                              phone_number_id=PHONE, display_phone_number="5511940001234")


@pytest.fixture
def template(org, number):
    return MessageTemplate.objects.create(
        organization=org, connection=number.connection, waba_id=WABA, template_id="606000000000001",
        name="confirmacao_visita", language="pt_BR", category="UTILITY", status="APPROVED",
        body_parameter_count=2, use="confirmacao")


@pytest.fixture
def graph():
    """Graph's send endpoint, answering like Meta with a fresh wamid per call."""
    counter = itertools.count(1)

    def accept(request):
        body = json.loads(request.body)
        wamid = f"wamid.TEST{next(counter):04d}"
        return 200, {}, json.dumps({"messaging_product": "whatsapp",
                                    "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                                    "messages": [{"id": wamid}]})

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.POST, re.compile(rf"{re.escape(GRAPH)}/\d+/messages"),
                          callback=accept, content_type="application/json")
        yield rsps
