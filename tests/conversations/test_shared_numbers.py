"""Meta's account model (META-PLATFORM.md §0): one number can be shared with several partners,
each with its own Messaging Account. A delivery is routed by (account, phone number id), so a
delivery for another account's use of a number a tenant holds never reaches that tenant.
Through the real webhook URL, signed, with the fixtures of ../shared/meta-payloads."""

import copy

import pytest

from tests.factories import fixture_numbers
from tests.ingest_support import deliver
from tests.meta import change_value, load, partner_added
from whatsapp.models import Connection, Message, PhoneNumber, WebhookLog

pytestmark = pytest.mark.django_db

OTHER_ACCOUNT = "102000000000303"  # another partner's Messaging Account on the same number


def inbound(*, entry_id: str | None = None, **metadata) -> dict:
    body = copy.deepcopy(load("messages_text_inbound.json"))  # number A: WABA …101, phone …101
    if entry_id is not None:
        body["entry"][0]["id"] = entry_id
    change_value(body)["metadata"].update(metadata)
    return body


@pytest.mark.parametrize("entry_id", [OTHER_ACCOUNT, "102000000000202"],
                         ids=["another-partners-account", "another-tenants-waba"])
def test_a_delivery_for_another_account_is_not_routed_to_the_tenant_holding_the_number(
        client, entry_id):
    numbers = fixture_numbers()
    log = deliver(client, inbound(entry_id=entry_id), expect=WebhookLog.Status.PARKED)

    assert Message.objects.count() == 0  # neither tenant A (the number) nor B (the WABA) got it
    assert log.parked_phone_number_id == numbers["A"].phone_number_id
    assert f"this delivery is for account {entry_id}" in log.last_error
    assert log.organization_id is None
    assert PhoneNumber.objects.get(pk=numbers["A"].pk).messages_in_count == 0


def test_a_messaging_account_named_in_the_delivery_must_be_the_numbers(client):
    fixture_numbers()
    log = deliver(client, inbound(messaging_account_id=OTHER_ACCOUNT),
                  expect=WebhookLog.Status.PARKED)
    assert OTHER_ACCOUNT in log.last_error and Message.objects.count() == 0


def test_the_same_delivery_addressed_to_the_numbers_own_waba_is_ingested(client):
    numbers = fixture_numbers()
    log = deliver(client, inbound())
    message = Message.objects.get()
    assert (message.organization, message.config) == (numbers["A"].organization, numbers["A"])
    assert log.organization_id == numbers["A"].organization_id


def test_deliveries_addressed_to_the_messaging_account_meta_named_reach_its_connection(client):
    numbers = fixture_numbers()
    # PARTNER_ADDED (signed) names the Messaging Account and the WAAC next to the WABA.
    body = partner_added(waba_id="102000000000101", owner="203000000000101")
    change_value(body)["waba_info"].update(messaging_account_id="105000000000101",
                                           waac_id="106000000000101")
    deliver(client, body)
    connection = Connection.objects.get(pk=numbers["A"].connection_id)
    assert (connection.messaging_account_id, connection.waac_id) == (
        "105000000000101", "106000000000101")

    deliver(client, inbound(entry_id="105000000000101"))
    assert Message.objects.get().organization == numbers["A"].organization


def test_the_numbers_waac_is_learnt_from_metas_delivery_then_enforced(client):
    numbers = fixture_numbers()
    deliver(client, inbound(waac_id="106000000000101"))
    assert PhoneNumber.objects.get(pk=numbers["A"].pk).waac_id == "106000000000101"

    other = inbound(waac_id="106000000000999")
    change_value(other)["messages"][0]["id"] = "wamid.OTHER-WAAC"
    log = deliver(client, other, expect=WebhookLog.Status.PARKED)
    assert "WAAC 106000000000999" in log.last_error
    assert Message.objects.count() == 1
