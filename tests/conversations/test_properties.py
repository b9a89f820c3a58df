"""Parking, and the exactly-once property: any order, any duplicates, the same database."""

import os
import random

import pytest
from django.db import transaction

from tests.conversations.test_messages import WAMID_TEXT, _edit
from tests.factories import ConnectionFactory, PhoneNumberFactory, fixture_numbers
from tests.ingest_support import canonical_dump, deliver
from tests.meta import PAYLOADS_DIR, load, post_signed
from whatsapp.models import Message, PhoneNumber, WebhookLog
from whatsapp.onboarding.connections import number_configured
from whatsapp.webhooks.process import webhook_process

pytestmark = pytest.mark.django_db

FIXTURES = sorted(p.name for p in PAYLOADS_DIR.glob("*.json")
                  if not p.name.startswith("account_update"))
RUNS = int(os.environ.get("INGEST_PROPERTY_RUNS", "8"))


# --- Parking ----------------------------------------------------------------------------------

def test_delivery_for_a_number_not_configured_yet_is_parked_then_processed(
    client, django_capture_on_commit_callbacks
):
    config = PhoneNumberFactory(
        phone_number_id="304000000000101",
        status=PhoneNumber.Status.CONFIGURING,
        connection__waba_id="102000000000101",
    )
    log = deliver(client, load("messages_text_inbound.json"), expect=WebhookLog.Status.PARKED)
    assert log.parked_phone_number_id == "304000000000101"
    assert "not configured yet" in log.last_error
    assert Message.objects.count() == 0
    # Parked rows are not retried by the sweeper: they wait for their number.
    assert not WebhookLog.objects.due().exists()

    config.status = PhoneNumber.Status.CONFIGURED
    config.save()
    # The pipeline's last step for a number: deliveries parked for it are re-queued.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        number_configured(config)
    assert len(callbacks) == 1
    log.refresh_from_db()
    assert (log.status, log.parked_phone_number_id, log.attempts) == ("received", "", 0)

    assert webhook_process(log.pk) == WebhookLog.Status.PROCESSED
    assert Message.objects.get().config == config
    assert WebhookLog.objects.unpark(phone_number_id="304000000000101") == []


def test_delivery_for_a_number_nobody_owns_is_kept_visible_to_support(client):
    log = deliver(client, load("smb_message_echoes_text.json"), expect=WebhookLog.Status.PARKED)
    assert log.parked_phone_number_id == "304000000000202"
    assert "no connection owns it" in log.last_error
    assert bytes(log.raw_body)  # kept byte for byte
    assert WebhookLog.objects.filter(status=WebhookLog.Status.PARKED).count() == 1

    # Later the number is onboarded: the pipeline unparks it.
    fixture_numbers()
    WebhookLog.objects.unpark(phone_number_id="304000000000202")
    assert webhook_process(log.pk) == WebhookLog.Status.PROCESSED
    assert Message.objects.get().source == Message.Source.PHONE_APP


def test_orphan_connection_number_is_parked(client):
    PhoneNumberFactory(
        phone_number_id="304000000000101", connection__organization=None, organization=None
    )
    log = deliver(client, load("messages_text_inbound.json"), expect=WebhookLog.Status.PARKED)
    assert "belongs to no organization" in log.last_error


def test_delivery_touching_two_numbers_parks_whole_until_both_are_configured(client):
    numbers = fixture_numbers()
    PhoneNumber.objects.filter(pk=numbers["B"].pk).update(status=PhoneNumber.Status.PENDING)
    log = deliver(client, load("messages_batched.json"), expect=WebhookLog.Status.PARKED)
    assert log.parked_phone_number_id == "304000000000202"
    # Nothing of number A's part was applied either: one transaction per delivery.
    assert Message.objects.count() == 0

    PhoneNumber.objects.filter(pk=numbers["B"].pk).update(status=PhoneNumber.Status.CONFIGURED)
    assert len(WebhookLog.objects.unpark(phone_number_id="304000000000202")) == 1
    assert webhook_process(log.pk) == WebhookLog.Status.PROCESSED
    assert Message.objects.count() == 2


def test_unpark_only_touches_its_number(client):
    deliver(client, load("messages_text_inbound.json"), expect=WebhookLog.Status.PARKED)
    deliver(client, load("smb_message_echoes_text.json"), expect=WebhookLog.Status.PARKED)
    assert len(WebhookLog.objects.unpark(phone_number_id="304000000000202")) == 1
    assert WebhookLog.objects.get(parked_phone_number_id="304000000000101").status == "parked"


# --- Exactly once, whatever the order ---------------------------------------------------------


def all_deliveries() -> list[dict]:
    bodies = [load(name) for name in FIXTURES]
    bodies.append(_edit(WAMID_TEXT, "wamid.EDIT1", "Ainda disponível? (editado)", 1790000150))
    bodies.append(_edit(WAMID_TEXT, "wamid.EDIT2", "Segunda edição", 1790000160))
    return bodies


def ingest(client, bodies: list[dict]) -> dict:
    """Inside a savepoint that is rolled back: returns the canonical dump of one run."""
    with transaction.atomic():
        # Outbound messages the statuses refer to (sent through the API before the webhooks).
        a = PhoneNumber.objects.get(phone_number_id="304000000000101")
        for wamid in (
            "wamid.GA1PVVQtQS0wMDAxFQIAEhgUT1VULUEtMDAwMQ==",
            "wamid.GA1PVVQtQS0wMDAzFQIAEhgUT1VULUEtMDAwMw==",
        ):
            Message.objects.create(
                organization=a.organization,
                config=a,
                wamid=wamid,
                direction="outbound",
                type="text",
                timestamp="2026-09-21T00:00:00Z",
            )
        for body in bodies:
            assert post_signed(client, body).status_code == 200
            log_id = WebhookLog.objects.latest("id").pk
            assert webhook_process(log_id) == WebhookLog.Status.PROCESSED
        dump = canonical_dump()
        transaction.set_rollback(True)
    return dump


def test_any_order_and_any_duplicates_give_the_same_database(client):
    fixture_numbers()
    ConnectionFactory(waba_id="810000000000001")  # unrelated tenant: must stay untouched
    bodies = all_deliveries()
    reference = ingest(client, bodies)
    assert len(reference["messages"]) > 15 and reference["syncs"]

    rng = random.Random(20261125)
    for run in range(RUNS):
        shuffled = [b for b in bodies for _ in range(rng.choice([1, 1, 2, 3]))]
        rng.shuffle(shuffled)
        got = ingest(client, shuffled)
        for table in reference:
            assert got[table] == reference[table], f"run {run}: {table} differs"


def test_redelivering_each_delivery_changes_nothing(client):
    fixture_numbers()
    bodies = all_deliveries()
    reference = ingest(client, bodies)
    assert ingest(client, [b for b in bodies for _ in range(2)]) == reference
