"""Meta's statuses coming back to our sends (by `biz_opaque_callback_data`, else wamid).

Called by the webhook dispatch after the conversations room stored the same statuses."""

import uuid
from datetime import UTC, datetime
from functools import cache

from django.db import connection
from django.utils import timezone

from whatsapp.core import sqlbatch
from whatsapp.events import facts
from whatsapp.events.outbox import emit
from whatsapp.models import OutboundEvent, OutboundMessage

S = OutboundMessage.Status


CALLBACK_PREFIX = "qlk:"


# A status never moves back: failed > read > delivered > sent > accepted.
RANK = {OutboundMessage.Status.ACCEPTED: 1, OutboundMessage.Status.SENT: 2,
        OutboundMessage.Status.DELIVERED: 3, OutboundMessage.Status.READ: 4,
        OutboundMessage.Status.FAILED: 5}


STATUS_FIELDS = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at",
                 "played": "read_at", "failed": "failed_at"}


def outbound_statuses_apply(organization_id, statuses: list) -> None:
    """Maps status webhooks to their sends by our callback data, else by wamid.

    Set-based, whatever the number of statuses (after a campaign they are most of the webhook
    traffic): the sends of a whole delivery or live batch are fetched (and locked, in pk order)
    with at most two queries, every status is applied in memory in the order given, then the
    sends it changed are written with one UPDATE, their events with one INSERT and the lead
    events with one write. A send whose statuses said nothing new is not written at all.
    """
    if not statuses:
        return
    callback_ids = [_callback_id(item) for item in statuses]
    mine = (OutboundMessage.objects.select_for_update()
            .filter(organization_id=organization_id).order_by("pk"))
    wanted = {i for i in callback_ids if i is not None}
    by_pk = {m.pk: m for m in mine.filter(pk__in=wanted)} if wanted else {}
    by_wamid: dict[str, OutboundMessage] = {}
    wamids = {item.wamid for item in statuses if item.wamid}
    if wamids:
        for message in mine.filter(wamid__in=wamids):
            message = by_pk.setdefault(message.pk, message)  # one instance per row
            by_wamid[message.wamid] = message
    before = {pk: _written(m) for pk, m in by_pk.items()}
    events: list[OutboundEvent] = []
    lead_events = []
    for item, callback_id in zip(statuses, callback_ids, strict=True):
        message = by_pk.get(callback_id) if callback_id else None
        if message is None and item.wamid:
            message = by_wamid.get(item.wamid)
        if message is None:
            continue
        seen = _status_apply(message, item)
        if seen is not None:
            events.append(seen[0])
            lead_events.append(seen[1])
        if message.wamid:  # a send may learn its wamid from its first status
            by_wamid.setdefault(message.wamid, message)
    changed = [m for pk, m in by_pk.items() if _written(m) != before[pk]]
    if changed:
        now = timezone.now()
        for message in changed:
            message.updated_at = now
        _sends_update(changed)
    if events:
        OutboundEvent.objects.bulk_create(events)
    # One write for the lead events (their streams locked in one order).
    emit(*lead_events)


PRICING_FIELDS = ("pricing_billable", "pricing_model", "pricing_category", "pricing_type",
                  "priced_at")


def _pricing_apply(message: OutboundMessage, pricing: dict, status: str, when: datetime) -> None:
    """Stores Meta's `pricing` in its columns. Meta bills on delivery, so a `delivered`
    status's pricing replaces what a `sent` one said; any other status only fills a gap. The
    month the message counts in is the time of the first status that carried pricing."""
    if message.pricing_category and status != "delivered":
        return
    billable = pricing.get("billable")
    message.pricing_billable = billable if isinstance(billable, bool) else None
    message.pricing_model = str(pricing.get("pricing_model") or "")[:16]
    message.pricing_category = str(pricing.get("category") or "")[:32]
    message.pricing_type = str(pricing.get("type") or "")[:32]
    if message.priced_at is None:
        message.priced_at = when


def _callback_id(item) -> uuid.UUID | None:
    data = item.biz_opaque_callback_data or ""
    if not data.startswith(CALLBACK_PREFIX):
        return None
    try:
        return uuid.UUID(data[len(CALLBACK_PREFIX):])
    except ValueError:
        return None


def _status_apply(message: OutboundMessage, item) -> tuple[OutboundEvent, object] | None:
    """Applies one status to the send in memory; the send's event and the lead event it
    makes, None when the status was seen before (or is not one we follow)."""
    status = "failed" if item.status == "error" else item.status
    column = STATUS_FIELDS.get(status)
    if column is None:
        return None
    when = datetime.fromtimestamp(item.timestamp, tz=UTC) if item.timestamp else timezone.now()
    first_time = getattr(message, column) is None
    if first_time:
        setattr(message, column, when)
    new = S.READ if status == "played" else status
    if RANK.get(new, 0) > RANK.get(message.status, 0):
        message.status = new
    if not message.wamid and item.wamid:
        message.wamid = item.wamid[:255]
    if item.pricing:
        _pricing_apply(message, item.pricing, status, when)
    if status == "failed":
        message.errors = item.errors
        codes = [e.get("code") for e in item.errors if isinstance(e.get("code"), int)]
        message.error_code = codes[0] if codes else message.error_code
        message.status_reason = "; ".join(str(e.get("title") or e.get("message") or "")
                                          for e in item.errors)[:2000]
    if not first_time:
        return None
    event = OutboundEvent(message=message, event=f"status_{status}",
                          detail={"wamid": item.wamid, "at": when.isoformat(),
                                  **({"errors": item.errors} if item.errors else {})})
    return event, facts.message_status(message, status, when, item.errors)


# What a status may change in a send (updated_at moves with them).
STATUS_WRITES = ("status", "wamid", "errors", "error_code", "status_reason", "sent_at",
                 "delivered_at", "read_at", "failed_at", *PRICING_FIELDS)
WRITTEN_FIELDS = (*STATUS_WRITES, "updated_at")


def _written(message: OutboundMessage) -> tuple:
    return tuple(getattr(message, f) for f in STATUS_WRITES)


_COLUMNS = [OutboundMessage._meta.get_field(f) for f in WRITTEN_FIELDS]
_JSON = {f.name for f in _COLUMNS if f.get_internal_type() == "JSONField"}


@cache
def _update_sql() -> str:
    """The changed sends in one UPDATE … FROM unnest, each column one array of the column's own
    type: bulk_update's CASE per row and field cost about 12 times the worker's CPU
    (bench/outstatus.py --write orm)."""
    return (f"UPDATE {OutboundMessage._meta.db_table} AS o SET "
            + ", ".join(f"{f.column} = u.{f.column}" for f in _COLUMNS)
            + " FROM " + sqlbatch.unnest(*(f.db_type(connection)
                                               for f in [OutboundMessage._meta.pk, *_COLUMNS]))
            + f" AS u(id, {', '.join(f.column for f in _COLUMNS)}) WHERE o.id = u.id")


def _sends_update(messages: list[OutboundMessage]) -> None:
    """Writes the status fields of `messages` with one statement (SQLite: bulk_update)."""
    if not sqlbatch.is_postgresql():
        OutboundMessage.objects.bulk_update(messages, WRITTEN_FIELDS)
        return
    rows = [(m.pk, *(sqlbatch.jsonb(getattr(m, f)) if f in _JSON else getattr(m, f)
                     for f in WRITTEN_FIELDS)) for m in messages]
    with sqlbatch.bound_cursor() as cursor:
        cursor.execute(_update_sql(), sqlbatch.columns(rows, 1 + len(_COLUMNS)))
