"""Writing events in the caller's transaction: one row per fact, numbered per stream."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from whatsapp.core import jobs, sqlbatch
from whatsapp.models import LeadEvent

from .subscribers import subscribers_for

logger = logging.getLogger(__name__)

# Every type the product emits (docs/lead-events.schema.json describes each one's data).
TYPES = ("message.received", "contact.created", "contact.identified", "message.status",
         "conversation.human_takeover", "conversation.handed_back", "connection.status")

# One dispatcher is woken per burst: emitters ring only when nobody rang in the last seconds;
# the dispatcher clears it before its last look, so nothing committed is left unseen.
DOORBELL = "whatsapp:lead-events:doorbell"
DOORBELL_SECONDS = 30
# Rows per INSERT, streams per upsert (a history import may write thousands of events at once).
BATCH = 500


@dataclass
class Pending:
    """One event to write: its type, its organization and stream, and its data."""

    type: str
    organization_id: int
    stream: str
    data: dict
    occurred_at: datetime | None = None
    contact_id: int | None = None


def contact_stream(contact_id: int) -> str:
    return f"contact:{contact_id}"


def connection_stream(connection_id) -> str:
    return f"connection:{connection_id}"


def emit(*events: Pending) -> list[LeadEvent]:
    """Writes the events in the current transaction (the caller's, or one of its own), each
    with the next sequence number of its stream, in the order given."""
    events = tuple(e for e in events if e.organization_id)
    if not events:
        return []
    assert all(e.type in TYPES for e in events), [e.type for e in events]
    now = timezone.now()
    deliver = LeadEvent.Delivery.PENDING if settings.LEAD_EVENTS_URL else LeadEvent.Delivery.NONE
    # Inside the caller's transaction no savepoint of its own: a failure here fails the fact
    # it reports anyway.
    with transaction.atomic(savepoint=False):
        sequences = _next_sequences([e.stream for e in events])
        # created_at a microsecond apart, in the order given (fan-out reads them in that order).
        rows = [LeadEvent(organization_id=e.organization_id, type=e.type, stream=e.stream,
                          sequence=sequences[i], contact_id=e.contact_id, data=e.data,
                          occurred_at=e.occurred_at or now, delivery=deliver,
                          next_attempt_at=now if deliver == LeadEvent.Delivery.PENDING else None,
                          fanned_out=not subscribers_for(e.type),
                          created_at=now + timedelta(microseconds=i))
                for i, e in enumerate(events)]
        if sqlbatch.is_postgresql():
            _insert(rows, deliver, now)
        else:
            LeadEvent.objects.bulk_create(rows, batch_size=BATCH)
    if deliver == LeadEvent.Delivery.PENDING or any(not r.fanned_out for r in rows):
        transaction.on_commit(ring)
    return rows


# The events as one INSERT … SELECT FROM unnest (no ORM compiling per row).
_INSERT = (
    f"INSERT INTO {LeadEvent._meta.db_table} (id, organization_id, type, stream, sequence, "
    "contact_id, data, occurred_at, created_at, fanned_out, delivery, next_attempt_at, "
    "attempts, last_error, delivered_at) SELECT u.*, %b::text, %b::timestamptz, 0, '', NULL "
    "FROM " + sqlbatch.unnest("uuid", "uuid", "text", "text", "bigint", "bigint", "jsonb",
                              "timestamptz", "timestamptz", "boolean") + " AS u")


def _insert(rows: list[LeadEvent], deliver: str, now) -> None:
    values = [(r.id, r.organization_id, r.type, r.stream, r.sequence, r.contact_id,
               sqlbatch.jsonb(r.data), r.occurred_at, r.created_at, r.fanned_out) for r in rows]
    with sqlbatch.bound_cursor() as cursor:
        cursor.execute(_INSERT, [deliver, now if deliver == LeadEvent.Delivery.PENDING else None,
                                 *sqlbatch.columns(values, 10)])


def _next_sequences(streams: list[str]) -> list[int]:
    """Reserves len(streams) numbers with one upsert per statement; the stream rows stay
    locked until the commit, so two writers of one conversation take turns."""
    counts: dict[str, int] = {}
    for s in streams:
        counts[s] = counts.get(s, 0) + 1
    keys = sorted(counts)  # a fixed order: two transactions never lock streams crosswise
    last: dict[str, int] = {}
    with connection.cursor() as cursor:
        for start in range(0, len(keys), BATCH):
            batch = keys[start:start + BATCH]
            cursor.execute(
                "INSERT INTO whatsapp_lead_event_streams (key, last_sequence) VALUES "
                + ", ".join(["(%s, %s)"] * len(batch))
                + " ON CONFLICT (key) DO UPDATE SET last_sequence = "
                  "whatsapp_lead_event_streams.last_sequence + excluded.last_sequence"
                  " RETURNING key, last_sequence",
                [p for k in batch for p in (k, counts[k])])
            last.update(cursor.fetchall())
    # Hand out each stream's reserved numbers in order.
    nxt = {k: last[k] - counts[k] + 1 for k in keys}
    out = []
    for s in streams:
        out.append(nxt[s])
        nxt[s] += 1
    return out


def ring() -> None:
    """Wakes a dispatcher (after the commit), unless one was woken moments ago."""
    try:
        if not cache.add(DOORBELL, 1, timeout=DOORBELL_SECONDS):
            return
    except Exception:
        logger.warning("Cache unavailable: waking the lead event dispatcher without doorbell")
    jobs.enqueue_quietly("deliver_lead_events")


def doorbell_clear() -> None:
    try:
        cache.delete(DOORBELL)
    except Exception:
        logger.warning("Cache unavailable: lead event doorbell not cleared")
