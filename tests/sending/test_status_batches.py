"""Statuses of our sends applied a batch at a time (issue 17 item 3): after a campaign Meta
sends back thousands of statuses for our sends, and the live drainer hands them over per
delivery or per batch of deliveries. A batch is set-based (its statement count does not grow
with its statuses), gives the same sends, send events and lead events as the statuses one by
one, and a send whose statuses say nothing new is not written."""

import json
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import MembershipFactory, OutboundMessageFactory, PhoneNumberFactory
from whatsapp.core.payloads.messages import StatusItem
from whatsapp.models import LeadEvent, OutboundEvent, OutboundMessage
from whatsapp.sending.statuses import outbound_statuses_apply

pytestmark = pytest.mark.django_db
S = OutboundMessage.Status
T0 = 1790000000
SENT_PRICE = {"billable": False, "pricing_model": "PMP", "category": "service",
              "type": "free_customer_service"}
DELIVERED_PRICE = {"billable": True, "pricing_model": "PMP", "category": "marketing",
                   "type": "regular"}
READ_PRICE = {"billable": False, "pricing_model": "CBP", "category": "utility", "type": "regular"}
ERROR = {"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable"}


def status(wamid: str, state: str, at: int, *, callback: str = "", pricing: dict | None = None,
           errors: list | None = None) -> StatusItem:
    item = {"id": wamid, "status": state, "timestamp": str(at), "recipient_id": "5511900000000"}
    if callback:
        item["biz_opaque_callback_data"] = callback
    if pricing:
        item["pricing"] = pricing
    if errors:
        item["errors"] = errors
    return StatusItem.from_item(item)


def campaign(count: int) -> tuple[object, list[StatusItem]]:
    """`count` accepted sends of one number and their sent, delivered and read statuses."""
    number = PhoneNumberFactory(connection__organization=MembershipFactory().organization)
    sends = [OutboundMessageFactory(config=number, wamid=f"wamid.C{count}.{k}", status=S.ACCEPTED,
                                    to=f"55119000{k:05d}") for k in range(count)]
    return number.organization_id, [
        status(m.wamid, state, T0 + stage, callback=m.callback_data if k % 2 else "")
        for stage, state in enumerate(("sent", "delivered", "read"))
        for k, m in enumerate(sends)]


def apply_counted(organization_id, items: list[StatusItem]) -> int:
    with CaptureQueriesContext(connection) as queries:
        outbound_statuses_apply(organization_id, items)
    return len(queries)


def test_a_batch_costs_the_same_statements_whatever_its_number_of_statuses():
    """On PostgreSQL (SQLite, the embedded default, cuts the lead events' INSERT by its limit of
    parameters per statement)."""
    small = apply_counted(*campaign(2))  # 6 statuses
    large = apply_counted(*campaign(40))  # 120 statuses
    assert large == small
    assert OutboundMessage.objects.filter(status=S.READ).count() == 42
    assert OutboundEvent.objects.filter(event__startswith="status_").count() == 42 * 3


def test_a_send_whose_statuses_say_nothing_new_is_not_written():
    organization_id, items = campaign(5)
    queued = dict(OutboundMessage.objects.values_list("pk", "updated_at"))
    outbound_statuses_apply(organization_id, items)
    written = dict(OutboundMessage.objects.values_list("pk", "updated_at"))
    assert all(written[pk] > queued[pk] for pk in queued)  # a send that changed is written
    events = OutboundEvent.objects.count()
    lead_events = LeadEvent.objects.count()

    with CaptureQueriesContext(connection) as queries:  # Meta redelivers the whole batch
        outbound_statuses_apply(organization_id, items)

    assert dict(OutboundMessage.objects.values_list("pk", "updated_at")) == written
    assert (OutboundEvent.objects.count(), LeadEvent.objects.count()) == (events, lead_events)
    assert not [q for q in queries if q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT"))]


def mixed(tag: str):
    """One number's sends and a mixed batch of their statuses (wamids tagged `tag`)."""
    number = PhoneNumberFactory(connection__organization=MembershipFactory().organization)

    def send(name: str, wamid: bool = True):
        return OutboundMessageFactory(config=number, status=S.ACCEPTED, to=f"5511{name}",
                                      wamid=f"wamid.{tag}.{name}" if wamid else None)

    by_callback, by_wamid, failing = send("9001"), send("9002"), send("9003")
    learning = send("9004", wamid=False)  # its send timed out: the wamid comes with a status
    playing = send("9005")
    items = [
        status(by_callback.wamid, "sent", T0, callback=by_callback.callback_data,
               pricing=SENT_PRICE),
        status(by_wamid.wamid, "read", T0 + 5),  # read before delivered (out of order)
        status("wamid.NOT-OURS", "delivered", T0 + 1),
        status(f"wamid.{tag}.9004", "sent", T0 + 2, callback=learning.callback_data,
               pricing=SENT_PRICE),
        status(f"wamid.{tag}.9004", "delivered", T0 + 3),  # matched by the wamid just learned
        status(by_callback.wamid, "delivered", T0 + 4, callback=by_callback.callback_data,
               pricing=DELIVERED_PRICE),  # delivered pricing replaces the sent one
        status(by_callback.wamid, "sent", T0 + 9, callback=by_callback.callback_data),  # again
        status(by_wamid.wamid, "delivered", T0 + 4, pricing=DELIVERED_PRICE),
        status(by_wamid.wamid, "read", T0 + 8, pricing=READ_PRICE),  # a duplicate: no gap to fill
        status(failing.wamid, "sent", T0 + 1),
        status(failing.wamid, "failed", T0 + 6, callback=failing.callback_data, errors=[ERROR]),
        status(failing.wamid, "delivered", T0 + 7),  # a late lower status does not win
        status(playing.wamid, "played", T0 + 6, pricing=READ_PRICE),  # fills the pricing gap
    ]
    return number.organization_id, [by_callback, by_wamid, failing, learning, playing], items


FIELDS = ("status", "wamid", "errors", "error_code", "status_reason", "sent_at",
          "delivered_at", "read_at", "failed_at", "pricing_billable", "pricing_model",
          "pricing_category", "pricing_type", "priced_at")


def outcome(sends: list[OutboundMessage], tag: str) -> tuple[list, list, list]:
    """What a user sees of the sends (rows, their events, the lead events), with the tag and
    the ids of this copy taken out."""

    def untagged(value):
        text = json.dumps(value, sort_keys=True, default=str).replace(f".{tag}.", ".X.")
        for k, m in enumerate(sends):
            text = text.replace(str(m.pk), f"send-{k}")
        return json.loads(text)

    rows = [untagged(list(OutboundMessage.objects.filter(pk=m.pk).values(*FIELDS)))
            for m in sends]
    events = [untagged(list(OutboundEvent.objects.filter(message=m).order_by("id")
                            .values_list("event", "detail"))) for m in sends]
    organization_id = sends[0].organization_id
    lead_events = untagged(list(LeadEvent.objects.filter(organization_id=organization_id)
                                .order_by("created_at").values_list("type", "stream", "data")))
    return rows, events, lead_events


def test_a_mixed_batch_gives_the_same_sends_and_events_as_its_statuses_one_by_one():
    organization_id, one_sends, items = mixed("ONE")
    for item in items:
        outbound_statuses_apply(organization_id, [item])
    organization_id, batch_sends, items = mixed("BATCH")
    outbound_statuses_apply(organization_id, items)

    assert outcome(batch_sends, "BATCH") == outcome(one_sends, "ONE")
    by_callback, by_wamid, failing, learning, playing = (
        OutboundMessage.objects.get(pk=m.pk) for m in batch_sends)
    at = lambda offset: datetime.fromtimestamp(T0 + offset, tz=UTC)  # noqa: E731
    assert (by_callback.status, by_callback.sent_at, by_callback.delivered_at) == (
        S.DELIVERED, at(0), at(4))
    assert (by_callback.pricing_category, by_callback.pricing_billable,
            by_callback.priced_at) == ("marketing", True, at(0))
    assert (by_wamid.status, by_wamid.read_at, by_wamid.delivered_at) == (S.READ, at(5), at(4))
    assert (by_wamid.pricing_category, by_wamid.priced_at) == ("marketing", at(4))
    assert (failing.status, failing.error_code, failing.status_reason, failing.delivered_at) == (
        S.FAILED, 131026, "Message undeliverable", at(7))
    assert (learning.wamid, learning.status) == ("wamid.BATCH.9004", S.DELIVERED)
    assert (playing.status, playing.read_at, playing.pricing_category) == (
        S.READ, at(6), "utility")
    assert list(failing.events.values_list("event", flat=True)) == [
        "status_sent", "status_failed", "status_delivered"]
    assert list(by_callback.events.values_list("event", flat=True)) == [
        "status_sent", "status_delivered"]
    assert LeadEvent.objects.filter(organization_id=organization_id,
                                    type="message.status").count() == 10
