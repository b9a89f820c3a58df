"""Coexistence history through the real webhook URL: phases, chunks, media, declined, 3 MB."""

import copy
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import fixture_numbers
from tests.ingest_support import deliver, ts
from tests.meta import change_value, load, wire
from whatsapp.models import Contact, HistoryChunk, HistorySync, Message, PhoneNumber

pytestmark = pytest.mark.django_db

PLACEHOLDER = "wamid.GA1ILUItMDAwMhUCABIYFEgtQi0wMDAy"
HISTORY = ["history_phase0_chunk1.json", "history_phase1_chunk1.json",
           "history_phase1_chunk2.json", "history_phase2_final.json"]


@pytest.fixture
def numbers(db) -> dict[str, PhoneNumber]:
    return fixture_numbers()


def sync() -> HistorySync:
    return HistorySync.objects.get()


def test_phase0_chunk_stores_messages_with_original_time_and_direction(client, numbers):
    log = deliver(client, load("history_phase0_chunk1.json"))

    assert Message.objects.count() == 4
    assert set(Message.objects.values_list("source", flat=True)) == {"history"}
    sent = Message.objects.get(wamid="wamid.GA1ILUItMDAwMRUCABIYFEgtQi0wMDAx")
    assert sent.direction == Message.Direction.OUTBOUND
    assert sent.timestamp == ts(1789997000)
    assert sent.status == "read"
    assert sent.body.startswith("Segue o link do imóvel")
    received = Message.objects.get(wamid="wamid.GA1ILUItMDAwMxUCABIYFEgtQi0wMDAz")
    assert received.direction == Message.Direction.INBOUND
    assert received.contact.user_id == "BR.7460193528461029384"
    placeholder = Message.objects.get(wamid=PLACEHOLDER)
    assert (placeholder.type, placeholder.media_id, placeholder.status) == (
        "media_placeholder", "", "delivered")
    # History never opens a window nor marks a takeover: it triggers nothing.
    assert not Contact.objects.filter(last_inbound_at__isnull=False).exists()
    assert not Contact.objects.filter(human_takeover_at__isnull=False).exists()
    chunk = HistoryChunk.objects.get()
    assert (chunk.phase, chunk.chunk_order, chunk.progress, chunk.thread_count,
            chunk.message_count) == (0, 1, 15, 2, 4)
    assert (sync().status, sync().progress, sync().messages_imported) == ("in_progress", 15, 4)
    assert log.organization == numbers["B"].organization
    config = PhoneNumber.objects.get(pk=numbers["B"].pk)
    assert (config.messages_in_count, config.messages_out_count) == (2, 2)


def test_chunks_in_any_order_reach_completion(client, numbers):
    for name in reversed(HISTORY):
        deliver(client, load(name))
    s = sync()
    assert (s.status, s.progress, s.phase, s.chunks_received, s.messages_imported) == (
        "completed", 100, 2, 4, 8)
    played = Message.objects.get(wamid="wamid.GA1ILUItMDMwMRUCABIYFEgtQi0wMzAx")
    assert played.status == "played"
    assert played.timestamp == ts(1777040000)


def test_redelivered_chunk_changes_nothing(client, numbers):
    deliver(client, load("history_phase0_chunk1.json"))
    deliver(client, load("history_phase0_chunk1.json"))
    assert Message.objects.count() == 4
    assert HistoryChunk.objects.count() == 1
    assert sync().messages_imported == 4
    assert PhoneNumber.objects.get(pk=numbers["B"].pk).messages_out_count == 2


def test_lowercase_statuses_and_from_me(client, numbers):
    deliver(client, load("history_observed_variant_lowercase_from_me.json"))
    mine = Message.objects.get(wamid="wamid.GA1ILUItMDQwMRUCABIYFEgtQi0wNDAx")
    theirs = Message.objects.get(wamid="wamid.GA1ILUItMDQwMhUCABIYFEgtQi0wNDAy")
    assert (mine.direction, mine.status) == ("outbound", "read")
    assert (theirs.direction, theirs.status) == ("inbound", "pending")
    assert sync().status == "completed"


@pytest.mark.parametrize("media_first", [False, True])
def test_media_placeholder_is_filled_by_the_follow_up(client, numbers, media_first):
    bodies = [load("history_phase0_chunk1.json"), load("history_media_asset_business_sent.json")]
    for body in reversed(bodies) if media_first else bodies:
        deliver(client, body)
    message = Message.objects.get(wamid=PLACEHOLDER)
    assert (message.type, message.media_id, message.direction) == ("image", "505000000000002",
                                                                    "outbound")
    assert message.status == "delivered"
    assert message.source == "history"
    assert Message.objects.count() == 4


def _for_number_b(body: dict) -> dict:
    body["entry"][0]["id"] = "102000000000202"
    change_value(body)["metadata"] = {"display_phone_number": "5521970005678",
                                      "phone_number_id": "304000000000202"}
    return body


def test_status_stored_before_its_history_message_applies_on_import(client, numbers):
    status = _for_number_b(load("messages_status_read.json"))
    change_value(status)["statuses"][0]["id"] = PLACEHOLDER
    deliver(client, status)
    assert not Message.objects.exists()
    deliver(client, load("history_phase0_chunk1.json"))
    # History says DELIVERED; the read status recorded before the import wins (never lower).
    assert Message.objects.get(wamid=PLACEHOLDER).status == "read"
    assert Message.objects.get(wamid="wamid.GA1ILUItMDAwMRUCABIYFEgtQi0wMDAx").status == "read"


def test_revoke_stored_before_its_history_original_applies_on_import(client, numbers):
    revoke = load("smb_message_echoes_revoke.json")
    original = "wamid.GA1ILUItMDAwMRUCABIYFEgtQi0wMDAx"
    change_value(revoke)["message_echoes"][0]["revoke"]["original_message_id"] = original
    deliver(client, revoke)
    deliver(client, load("history_phase0_chunk1.json"))
    assert Message.objects.get(wamid=original).revoked_at == ts(1790001300)
    assert Message.objects.get(wamid=PLACEHOLDER).revoked_at is None


def test_redelivered_chunk_raises_statuses_never_lowers_them(client, numbers):
    deliver(client, load("history_phase0_chunk1.json"))
    again = load("history_phase0_chunk1.json")
    threads = change_value(again)["history"][0]["threads"]
    threads[0]["messages"][0]["history_context"]["status"] = "DELIVERED"  # stored: read
    threads[0]["messages"][1]["history_context"]["status"] = "PLAYED"  # stored: delivered
    deliver(client, again)
    assert Message.objects.get(wamid="wamid.GA1ILUItMDAwMRUCABIYFEgtQi0wMDAx").status == "read"
    assert Message.objects.get(wamid=PLACEHOLDER).status == "played"
    assert (Message.objects.count(), sync().messages_imported) == (4, 4)
    config = PhoneNumber.objects.get(pk=numbers["B"].pk)
    assert (config.messages_in_count, config.messages_out_count) == (2, 2)


def test_absurd_timestamp_is_imported_at_receipt_time(client, numbers):
    body = load("history_phase0_chunk1.json")
    change_value(body)["history"][0]["threads"][0]["messages"][0]["timestamp"] = "9" * 20
    deliver(client, body)
    assert Message.objects.count() == 4
    assert Message.objects.get(wamid="wamid.GA1ILUItMDAwMRUCABIYFEgtQi0wMDAx").timestamp


def test_user_sent_media_follow_up(client, numbers):
    deliver(client, load("history_media_asset_user_sent.json"))
    message = Message.objects.get()
    assert (message.type, message.media_id, message.body) == ("image", "505000000000001",
                                                              "Foto da fachada")
    assert (message.direction, message.source) == ("inbound", "history")
    assert message.contact.last_inbound_at is None


def test_declined_history_is_the_sync_outcome(client, numbers):
    deliver(client, load("history_declined.json"))
    s = sync()
    assert (s.status, s.error_code) == ("declined", 2593109)
    assert "turned off" in s.error_message
    assert HistoryChunk.objects.count() == 0


def big_chunk(target_bytes: int = 3 * 1024 * 1024 - 4096, *, wamid_prefix: str = "wamid.BIG"):
    """One history chunk of ~3 MB: many threads of realistic messages (compact wire bytes)."""
    body = copy.deepcopy(load("history_phase1_chunk1.json"))
    history = change_value(body)["history"][0]
    history["metadata"] = {"phase": 1, "chunk_order": 7, "progress": 70}
    threads, size, n = [], len(wire(body)), 0
    while size < target_bytes:
        t = len(threads)
        phone = f"55119{t:08d}"
        thread = {"id": phone, "context": {"wa_id": phone, "user_id": f"BR.{7 * 10**18 + t}"},
                  "messages": []}
        for _ in range(40):
            n += 1
            outbound = n % 3 == 0
            message = {
                "from": "5521970005678" if outbound else phone,
                "id": f"{wamid_prefix}{n:09d}",
                "timestamp": str(1780000000 + n),
                "type": "text",
                "text": {"body": f"Mensagem {n}: tem interesse no apartamento da rua {t}?"},
                "history_context": {"status": "READ"},
            }
            if outbound:
                message["to"] = phone
            else:
                message["from_user_id"] = thread["context"]["user_id"]
            thread["messages"].append(message)
        threads.append(thread)
        size += len(json.dumps(thread, separators=(",", ":"))) + 1
    history["threads"] = threads
    while len(wire(body)) > 3 * 1024 * 1024:  # the estimate above is approximate
        threads.pop()
    return body, sum(len(t["messages"]) for t in threads)


def test_three_megabyte_chunk_is_imported_with_bulk_writes(client, numbers):
    body, count = big_chunk()
    raw = wire(body)
    assert 2.9 * 1024 * 1024 < len(raw) <= 3 * 1024 * 1024
    with CaptureQueriesContext(connection) as queries:
        deliver(client, raw)
    assert Message.objects.count() == count
    assert sync().messages_imported == count
    # Bulk writes: the query count grows with batches of 1000, not with messages.
    assert len(queries) < count / 20, len(queries)

    deliver(client, raw)  # redelivery: nothing new
    assert Message.objects.count() == count
    assert sync().messages_imported == count
