"""Concurrent deliveries against real PostgreSQL locks: duplicates and one lead on two numbers."""

import copy

import pytest

from tests.factories import PhoneNumberFactory, fixture_numbers
from tests.meta import change_value, load, post_signed
from tests.webhooks.test_concurrency import process_concurrently
from whatsapp.models import Contact, Message, PhoneNumber, WebhookLog

pytestmark = pytest.mark.django_db(transaction=True)


def test_ten_identical_message_deliveries_store_one_message(client):
    numbers = fixture_numbers()
    for _ in range(10):
        assert post_signed(client, load("messages_text_inbound.json")).status_code == 200
    results = process_concurrently(list(WebhookLog.objects.values_list("pk", flat=True)))
    assert results.count(WebhookLog.Status.PROCESSED) == 10, results
    assert Message.objects.count() == 1
    assert Contact.objects.count() == 1
    assert PhoneNumber.objects.get(pk=numbers["A"].pk).messages_in_count == 1


def test_one_lead_writing_to_two_numbers_of_one_org_at_once(client):
    numbers = fixture_numbers()
    # Both numbers in the same organization: the lead is one contact.
    second = PhoneNumberFactory(connection__organization=numbers["A"].organization,
                           phone_number_id="304000000000999")
    body = load("messages_text_inbound.json")
    other = copy.deepcopy(body)
    value = change_value(other)
    value["metadata"]["phone_number_id"] = second.phone_number_id
    other["entry"][0]["id"] = second.connection.waba_id  # Meta addresses it to that number's WABA
    value["messages"][0]["id"] = "wamid.OTHER-NUMBER"
    post_signed(client, body)
    post_signed(client, other)
    ids = list(WebhookLog.objects.order_by("pk").values_list("pk", flat=True))

    # The loser of the race on the new lead's unique identity resolves it again (no retry).
    assert process_concurrently(ids) == [WebhookLog.Status.PROCESSED] * 2
    contact = Contact.objects.get()
    assert contact.messages.count() == 2
