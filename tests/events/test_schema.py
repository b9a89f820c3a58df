"""Every event the product writes matches docs/lead-events.schema.json (the documented,
versioned contract), each type with its own data."""

import json
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tests.factories import OutboundMessageFactory, fixture_numbers
from tests.ingest_support import deliver
from tests.meta import load
from whatsapp.conversations.takeover import takeovers_expire
from whatsapp.events.outbox import TYPES
from whatsapp.events.payloads import event_body
from whatsapp.models import Contact, LeadEvent
from whatsapp.onboarding.connections import connection_disconnect

pytestmark = pytest.mark.django_db

SCHEMA = json.loads((Path(settings.BASE_DIR) / "docs" / "lead-events.schema.json").read_text())


def test_every_event_type_matches_the_published_schema(client, lead_events):
    numbers = fixture_numbers()
    deliver(client, load("messages_text_inbound_pre_bsuid.json"))
    deliver(client, load("messages_text_inbound.json"))  # identified: its BSUID shows
    deliver(client, load("smb_message_echoes_text.json"))  # a person took over (number B)
    mariana = Contact.objects.get(organization=numbers["A"].organization)
    OutboundMessageFactory(organization=numbers["A"].organization, config=numbers["A"],
                           contact=mariana, to="5511987654321", status="accepted",
                           wamid="wamid.GA1PVVQtQS0wMDAxFQIAEhgUT1VULUEtMDAwMQ==")
    deliver(client, load("messages_status_sent.json"))
    Contact.objects.filter(human_takeover_at__isnull=False).update(
        human_takeover_at=timezone.now() - timedelta(days=1))
    takeovers_expire()
    with transaction.atomic():
        connection_disconnect(waba_id=numbers["B"].connection.waba_id, reason="PARTNER_REMOVED")

    bodies = [json.loads(json.dumps(event_body(e))) for e in LeadEvent.objects.all()]
    assert {b["type"] for b in bodies} == set(TYPES)
    validator = jsonschema.Draft202012Validator(SCHEMA,
                                                format_checker=jsonschema.FormatChecker())
    for body in bodies:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
        assert errors == [], (body["type"], errors)


def test_the_schema_refuses_an_event_without_its_data():
    validator = jsonschema.Draft202012Validator(SCHEMA)
    body = {"id": "0c2a6f0e-8a5a-4d8e-9a53-2d8f8d6c1f00", "type": "message.received",
            "version": 1, "timestamp": "2026-12-03T10:00:00Z",
            "organization_id": "0c2a6f0e-8a5a-4d8e-9a53-2d8f8d6c1f01",
            "conversation": "contact:1", "sequence": 1, "data": {"contact": {}}}
    assert not validator.is_valid(body)
