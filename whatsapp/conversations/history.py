"""Coexistence imports: history chunks, the phone's address book and BSUID changes."""

from django.utils import timezone

from whatsapp.core.payloads import (
    HistoryChunkData,
    HistoryValue,
    MessagesValue,
    Party,
    StateSyncValue,
    UserIdUpdateValue,
)
from whatsapp.core.phones import at, normalize_phone
from whatsapp.models import (
    HistoryChunk,
    HistorySync,
    Message,
)

from .contacts import ContactBook, contacts_change_user_id, sighting
from .messages import message_row
from .routing import Route
from .staged import staged_messages_store

HISTORY_DECLINED = 2593109


def history_ingest(route_: Route, value: HistoryValue) -> None:
    """Coexistence history: chunks in any order, stored once, never triggering anything."""
    sync, _ = HistorySync.objects.get_or_create(config=route_.config)
    imported = 0
    for chunk in value.chunks:
        if chunk.errors:
            _history_error(sync, chunk.errors)
        else:
            imported += _history_chunk(route_, value, chunk, sync)
    if value.media.messages or value.media.echoes:
        imported += _history_media(route_, value.media)
    sync.messages_imported += imported
    sync.chunks_received = HistoryChunk.objects.filter(
        phone_number_id=route_.config.phone_number_id).count()
    sync.status = _history_status(sync)
    sync.save()


def _history_chunk(route_: Route, value: HistoryValue, chunk: HistoryChunkData,
                   sync: HistorySync) -> int:
    now = timezone.now()
    business = normalize_phone(value.display_phone_number or route_.config.display_phone_number)
    book = ContactBook(route_.organization_id)
    book.resolve([
        # The thread's first message dates the sighting (an absurd timestamp dates nothing).
        sighting(t.party, min((when for m in t.messages if (when := at(m.timestamp))),
                              default=None))
        for t in chunk.threads
    ])
    rows = []
    from_business: dict[str, bool] = {}  # a thread has two senders: normalized once each
    for thread in chunk.threads:
        contact = book.get(thread.party)
        for m in thread.messages:
            if m.from_ not in from_business:
                from_business[m.from_] = bool(business) and normalize_phone(m.from_) == business
            # `to` is present only on what the business sent; some BSPs relay from_me instead.
            outbound = bool(m.to) or m.from_me or from_business[m.from_]
            direction = Message.Direction.OUTBOUND if outbound else Message.Direction.INBOUND
            rows.append(message_row(route_, m, direction=direction, source=Message.Source.HISTORY,
                                 contact=contact, fallback=now))
    inserted = staged_messages_store(route_, rows)
    book.save()
    _history_chunk_record(route_, chunk, len(rows))
    sync.progress = max(sync.progress, chunk.progress)
    sync.phase = max(sync.phase, chunk.phase)
    return len(inserted)


def _history_chunk_record(route_: Route, chunk: HistoryChunkData, message_count: int) -> None:
    """The (number, phase, chunk_order) row; a redelivered chunk only raises its figures.

    Its messages are still (idempotently) imported: a chunk redelivered with a different
    body must not lose messages, and wamids already stored cost one indexed lookup.
    """
    record, created = HistoryChunk.objects.get_or_create(
        phone_number_id=route_.config.phone_number_id, phase=chunk.phase,
        chunk_order=chunk.chunk_order,
        defaults={"config": route_.config, "progress": chunk.progress,
                  "thread_count": len(chunk.threads), "message_count": message_count},
    )
    if not created:
        record.progress = max(record.progress, chunk.progress)
        record.thread_count = max(record.thread_count, len(chunk.threads))
        record.message_count = max(record.message_count, message_count)
        record.save(update_fields=["progress", "thread_count", "message_count"])


def _history_media(route_: Route, media: MessagesValue) -> int:
    """The follow-up webhook that carries a media_placeholder's media id (either order)."""
    now = timezone.now()
    book = ContactBook(route_.organization_id)
    inbound = [(m, media.party(user_id=m.from_user_id, wa_id=m.from_)) for m in media.messages]
    outbound = [(m, media.party(user_id=m.to_user_id, wa_id=m.to)) for m in media.echoes]
    book.resolve([sighting(p, at(m.timestamp, now)) for m, p in inbound + outbound])
    rows = [message_row(route_, m, direction=Message.Direction.INBOUND,
                     source=Message.Source.HISTORY, contact=book.get(p), fallback=now)
            for m, p in inbound]
    rows += [message_row(route_, m, direction=Message.Direction.OUTBOUND,
                      source=Message.Source.HISTORY, contact=book.get(p), fallback=now)
             for m, p in outbound]
    inserted = staged_messages_store(route_, rows)
    book.save()
    return len(inserted)


def _history_error(sync: HistorySync, errors: list[dict]) -> None:
    codes = sorted(int(e["code"]) for e in errors if str(e.get("code", "")).isdigit())
    # The business turned history sharing off (2593109): that is the sync's outcome.
    code = HISTORY_DECLINED if HISTORY_DECLINED in codes else (codes[0] if codes else None)
    error = next((e for e in errors if e.get("code") == code), errors[0])
    sync.error_code = code
    sync.error_message = str(error.get("message") or error.get("title") or "")[:2000]


def _history_status(sync: HistorySync) -> str:
    if sync.progress >= 100:
        return HistorySync.Status.COMPLETED
    if sync.error_code == HISTORY_DECLINED:
        return HistorySync.Status.DECLINED
    return HistorySync.Status.IN_PROGRESS


def state_sync_ingest(route_: Route, value: StateSyncValue) -> None:
    """The phone's address book: add (also edits) and remove; the newest change wins."""
    book = ContactBook(route_.organization_id)
    items = [i for i in value.items if i.party.known]
    book.resolve([sighting(Party(user_id=i.party.user_id, wa_id=i.party.wa_id), None)
                  for i in items])
    for item in items:
        contact = book.get(item.party)
        if contact.note_address_book(at(item.timestamp), item.action != "remove",
                                     item.full_name):
            book.mark(contact)
    book.save()


def user_id_update_ingest(route_: Route, value: UserIdUpdateValue) -> None:
    book = ContactBook(route_.organization_id)
    for change in value.changes:
        contacts_change_user_id(book, previous=change.previous, current=change.current,
                                wa_id=change.wa_id, when=at(change.timestamp))
    for party in value.contacts:
        if party.profile_name and party.known:
            book.resolve([sighting(party, None)])
    book.save()
