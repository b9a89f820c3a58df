"""Two drainers whose batches span the same numbers (issue 17): a batch is applied per group of
deliveries sharing a number, and a group whose number another transaction holds is applied
after the others instead of holding them back. Real PostgreSQL row locks, real threads."""

import threading
import time

import pytest
from django.db import connection, transaction

from tests.factories import fixture_numbers
from tests.ingest_support import stored
from tests.meta import change_value, load
from whatsapp.models import Message, PhoneNumber, WebhookLog
from whatsapp.webhooks.process import process_batch

pytestmark = pytest.mark.django_db(transaction=True)

A = ("102000000000101", "304000000000101")
B = ("102000000000202", "304000000000202")


def inbound(i: int, number: tuple[str, str]) -> dict:
    body = load("messages_text_inbound.json")
    body["entry"][0]["id"] = number[0]
    value = change_value(body)
    value["metadata"]["phone_number_id"] = number[1]
    value["contacts"][0].update(wa_id=f"55119{i:08d}", user_id=f"BR.{9 * 10**18 + i}")
    value["messages"][0].update(id=f"wamid.LOCKS{i:06d}", timestamp=str(1790000000 + i),
                                **{"from": f"55119{i:08d}", "from_user_id": f"BR.{9 * 10**18 + i}"})
    return body


def test_a_group_whose_number_is_held_goes_last_and_the_others_do_not_wait_for_it():
    numbers = fixture_numbers()
    a = [stored(inbound(1, A)).pk]
    b = [stored(inbound(2, B)).pk, stored(inbound(3, B)).pk]
    held, release = threading.Event(), threading.Event()
    results: list[tuple[int, str]] = []

    def other_drainer() -> None:  # holds number A's row, as another batch's transaction does
        try:
            with transaction.atomic():
                PhoneNumber.objects.select_for_update().get(pk=numbers["A"].pk)
                held.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    def drainer() -> None:
        try:
            results.extend(process_batch(a + b))
        finally:
            connection.close()

    holder = threading.Thread(target=other_drainer)
    holder.start()
    assert held.wait(timeout=10)
    worker = threading.Thread(target=drainer)
    worker.start()
    try:
        # A's group is the smaller (it would go first), but its number is held: B's
        # deliveries are applied and committed meanwhile.
        deadline = time.monotonic() + 30
        while WebhookLog.objects.filter(pk__in=b, status="processed").count() < len(b):
            assert time.monotonic() < deadline, "B's deliveries waited for A's number"
            time.sleep(0.05)
        assert WebhookLog.objects.get(pk=a[0]).status == WebhookLog.Status.PROCESSING
    finally:
        release.set()
        holder.join(timeout=30)
        worker.join(timeout=30)
    # Then A's, once its number is free: every delivery processed once.
    assert [log_id for log_id, _ in results] == b + a
    assert {status for _, status in results} == {WebhookLog.Status.PROCESSED}
    assert Message.objects.filter(wamid__startswith="wamid.LOCKS").count() == 3
