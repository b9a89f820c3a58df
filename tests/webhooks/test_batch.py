"""A drainer's batch processed together (process.process_batch): the same database as one
delivery at a time, whatever the order and duplicates, and one bad delivery fails alone."""

import copy
import random
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from tests.conversations.test_properties import all_deliveries, ingest
from tests.factories import fixture_numbers
from tests.ingest_support import canonical_dump, stored
from tests.meta import change_value, load
from whatsapp.conversations import messages
from whatsapp.models import LeadEvent, Message, MessageStatus, PhoneNumber, WebhookLog
from whatsapp.tasks import drain_webhook_inbox
from whatsapp.webhooks import intake
from whatsapp.webhooks.process import process_batch

pytestmark = pytest.mark.django_db

WAMID_OUT = "wamid.GA1PVVQtQS0wMDAxFQIAEhgUT1VULUEtMDAwMQ=="


def inbound(i: int, *, number: str = "304000000000101") -> dict:
    body = load("messages_text_inbound.json")
    value = change_value(body)
    value["metadata"]["phone_number_id"] = number
    value["contacts"][0].update(wa_id=f"55119{i:08d}", user_id=f"BR.{9 * 10**18 + i}")
    value["messages"][0].update(id=f"wamid.BATCH{i:06d}", timestamp=str(1790000000 + i),
                                **{"from": f"55119{i:08d}", "from_user_id": f"BR.{9 * 10**18 + i}"})
    return body


def status(name: str, ts: int, wamid: str = WAMID_OUT) -> dict:
    body = load("messages_status_read.json")
    change_value(body)["statuses"][0].update(id=wamid, status=name, timestamp=str(ts))
    return body


def outbound_message(wamid: str = WAMID_OUT) -> Message:
    a = fixture_numbers()["A"]
    return Message.objects.create(organization=a.organization, config=a, wamid=wamid,
                                  direction="outbound", type="text",
                                  timestamp="2026-09-21T00:00:00Z")


def batch(bodies: list[dict]) -> dict[int, str]:
    ids = [stored(body).pk for body in bodies]
    return dict(process_batch(ids)), ids


def test_batches_in_any_order_with_duplicates_give_the_database_of_one_by_one(client):
    fixture_numbers()
    bodies = all_deliveries()
    reference = ingest(client, bodies)  # one delivery at a time (webhook_process)
    rng = random.Random(20261203)
    for run in range(4):
        shuffled = [b for b in bodies for _ in range(rng.choice([1, 2, 3]))]
        rng.shuffle(shuffled)
        with transaction.atomic():
            a = PhoneNumber.objects.get(phone_number_id="304000000000101")
            for wamid in (WAMID_OUT, "wamid.GA1PVVQtQS0wMDAzFQIAEhgUT1VULUEtMDAwMw=="):
                Message.objects.create(organization=a.organization, config=a, wamid=wamid,
                                       direction="outbound", type="text",
                                       timestamp="2026-09-21T00:00:00Z")
            ids = [stored(b).pk for b in shuffled]
            for start in range(0, len(ids), 7):  # batches of 7, duplicates within and across
                outcomes = dict(process_batch(ids[start:start + 7]))
                assert set(outcomes.values()) == {WebhookLog.Status.PROCESSED}, run
            got = canonical_dump()
            transaction.set_rollback(True)
        for table in reference:
            assert got[table] == reference[table], f"run {run}: {table} differs"


def test_duplicates_within_a_batch_are_stored_once():
    fixture_numbers()
    outcomes, ids = batch([inbound(1), inbound(2), inbound(1), inbound(2), inbound(1)])
    assert set(outcomes.values()) == {"processed"}
    assert sorted(Message.objects.values_list("wamid", flat=True)) == [
        "wamid.BATCH000001", "wamid.BATCH000002"]
    a = Message.objects.first().config
    a.refresh_from_db()
    assert a.messages_in_count == 2
    # Across batches too: the same deliveries again change nothing.
    batch([inbound(2), inbound(1)])
    assert Message.objects.count() == 2


def test_statuses_out_of_order_in_one_batch_end_at_the_highest():
    message = outbound_message()
    outcomes, _ = batch([status("read", 1790000300), status("sent", 1790000100),
                         status("delivered", 1790000200), status("sent", 1790000100)])
    assert set(outcomes.values()) == {"processed"}
    message.refresh_from_db()
    assert message.status == "read"
    assert MessageStatus.objects.filter(wamid=WAMID_OUT).count() == 3
    # A late `delivered` in a later batch never moves it back.
    batch([status("delivered", 1790000200), inbound(3)])
    message.refresh_from_db()
    assert message.status == "read"


@pytest.mark.parametrize("error, outcome", [(ValueError, "dead"), (KeyError, "failed")])
def test_one_poisoned_delivery_fails_alone_and_the_others_are_processed(error, outcome):
    fixture_numbers()
    real_row = messages.message_row

    def row(route_, m, **kwargs):
        if m.wamid == "wamid.BATCH000002":  # what this one item carries breaks its storing
            raise error("poisoned item")
        return real_row(route_, m, **kwargs)

    with mock.patch.object(messages, "message_row", side_effect=row):
        outcomes, ids = batch([inbound(1), inbound(2), inbound(3), inbound(4)])
    assert [outcomes[i] for i in ids] == ["processed", outcome, "processed", "processed"]
    assert sorted(Message.objects.values_list("wamid", flat=True)) == [
        "wamid.BATCH000001", "wamid.BATCH000003", "wamid.BATCH000004"]
    bad = WebhookLog.objects.get(pk=ids[1])
    assert bad.attempts == 1 and "poisoned item" in bad.last_error
    assert (bad.next_attempt_at is not None) == (outcome == "failed")  # retried later, alone
    # The others were claimed once and finished once.
    assert set(WebhookLog.objects.filter(pk__in=[ids[0], ids[2], ids[3]])
               .values_list("status", "attempts")) == {("processed", 1)}


def test_a_delivery_for_an_unknown_number_is_parked_and_the_batch_goes_on():
    fixture_numbers()
    outcomes, ids = batch([inbound(1), inbound(2, number="309999999999999"), inbound(3)])
    assert [outcomes[i] for i in ids] == ["processed", "parked", "processed"]
    assert WebhookLog.objects.get(pk=ids[1]).parked_phone_number_id == "309999999999999"
    assert Message.objects.count() == 2


def test_a_bigger_batch_costs_no_more_queries():
    """Set-based: the queries of a batch do not grow with its deliveries."""
    fixture_numbers()
    batch([inbound(i) for i in range(2)])  # the leads exist from now on

    def queries(first: int, n: int) -> int:
        ids = [stored(copy.deepcopy(inbound(i))).pk for i in range(first, first + n)]
        with CaptureQueriesContext(connection) as captured:
            assert {s for _, s in process_batch(ids)} == {"processed"}
        return len(captured)

    assert queries(100, 20) <= queries(200, 2)


def test_the_drainer_claims_and_applies_a_popped_batch_together(broker):
    fixture_numbers()
    ids = [stored(inbound(i)).pk for i in range(5)]
    for log_id in ids:
        intake.webhook_announce(log_id)
    [(slot, token)] = broker.of("drain_webhook_inbox")
    with CaptureQueriesContext(connection) as captured:
        assert drain_webhook_inbox(slot, token) == 5
    claims = [q for q in captured if "SET status = 'processing'" in q["sql"]
              or "SET status = %s" in q["sql"]]
    assert len(claims) == 1  # one claim for the batch, not one per delivery
    assert set(WebhookLog.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
        "processed"}
    assert Message.objects.count() == 5


def test_a_leads_ad_referral_read_back_in_a_later_batch_stays_an_object():
    """The batch reads its leads with one raw statement: their JSON columns are still parsed."""
    fixture_numbers()
    first = load("messages_text_inbound_ctwa_referral.json")
    later = copy.deepcopy(first)
    message = change_value(later)["messages"][0]
    message.update(id="wamid.BATCHREFERRAL2", timestamp=str(int(message["timestamp"]) + 60))
    message.pop("referral", None)
    batch([first, inbound(1)])
    outcomes, _ = batch([later, inbound(2)])
    assert set(outcomes.values()) == {"processed"}
    received = LeadEvent.objects.filter(type="message.received").order_by("created_at")
    referral = received.last().data["contact"]["referral"]
    assert isinstance(referral, dict) and referral == change_value(first)["messages"][0][
        "referral"]
