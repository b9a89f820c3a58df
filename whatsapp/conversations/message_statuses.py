"""Statuses of messages: one MessageStatus per (wamid, status), and a message's status only
ever moves up the ranking, whatever order its statuses and the message itself arrive in."""

from collections import defaultdict
from datetime import datetime

from django.db.models import Case, Value, When

from whatsapp.core import sqlbatch
from whatsapp.core.payloads import StatusItem
from whatsapp.core.phones import at
from whatsapp.models import Message, MessageStatus

from . import livesql
from .contacts import BATCH, chunks
from .routing import Route

# Never regress: failed > played > read > delivered > sent > pending. `played` (voice) comes
# after `read`, so it ranks above it; history's ERROR is a failure.
STATUS_RANK = {status: rank for rank, status in enumerate(livesql.STATUS_ORDER)}

STATUS_ALIASES = {"error": "failed"}


def apply_stored_statuses(wamids: list[str]) -> None:
    """Sets each message's status to the highest-ranked one recorded (never lower).

    Whoever inserts a message calls this for it (statuses may have arrived first), under the
    number's PhoneNumber row lock as webhook processing holds it.
    """
    if not wamids:
        return
    if sqlbatch.is_postgresql():
        livesql.statuses_apply_stored(wamids)
        return
    _apply_best_statuses(st for batch in chunks(wamids)
                         for st in MessageStatus.objects.filter(wamid__in=batch))


def _apply_best_statuses(statuses) -> None:
    """Moves each message up to the highest-ranked of `statuses` for it (never lower)."""
    best: dict[str, MessageStatus] = {}
    for st in statuses:
        if st.status in STATUS_RANK and (
            st.wamid not in best or STATUS_RANK[st.status] > STATUS_RANK[best[st.wamid].status]
        ):
            best[st.wamid] = st
    # One UPDATE per target status (not per message): only rows still below it move up.
    by_status: dict[str, list[MessageStatus]] = defaultdict(list)
    for st in best.values():
        by_status[st.status].append(st)
    for status, found in by_status.items():
        lower = [s for s, r in STATUS_RANK.items() if r < STATUS_RANK[status]]
        for batch in chunks(found):
            update = {"status": status, "status_at": _per_wamid(batch, "timestamp")}
            if status == "failed":
                update["errors"] = _per_wamid(batch, "errors")
            Message.objects.filter(wamid__in=[st.wamid for st in batch],
                                   status__in=lower).update(**update)


def _per_wamid(statuses: list[MessageStatus], attr: str):
    """The value of `attr` for each message of an UPDATE that spans several wamids."""
    if len(statuses) == 1:
        return getattr(statuses[0], attr)
    field = MessageStatus._meta.get_field(attr)
    return Case(*(When(wamid=st.wamid, then=Value(getattr(st, attr), output_field=field))
                  for st in statuses), output_field=field)


def statuses_ingest(route_: Route, statuses: list[StatusItem], now: datetime) -> None:
    """One MessageStatus per (wamid, status); messages move only up the status ranking."""
    if not statuses:
        return
    if not sqlbatch.is_postgresql():
        return _statuses_ingest_portable(route_, statuses, now)
    livesql.statuses_insert_apply(route_.organization_id, route_.config.pk, [
        (s.wamid[:255], STATUS_ALIASES.get(s.status, s.status)[:16], at(s.timestamp, now),
         s.recipient_id[:32], s.recipient_user_id[:160], s.errors, s.pricing, s.conversation,
         s.biz_opaque_callback_data, s.raw)
        for s in statuses], now)


def _statuses_ingest_portable(route_: Route, statuses: list[StatusItem], now: datetime) -> None:
    """statuses_ingest through the ORM (SQLite, the embedded default)."""
    rows = [
        MessageStatus(
            organization_id=route_.organization_id, config=route_.config,
            wamid=s.wamid[:255], status=STATUS_ALIASES.get(s.status, s.status)[:16],
            timestamp=at(s.timestamp, now), recipient_id=s.recipient_id[:32],
            recipient_user_id=s.recipient_user_id[:160], errors=s.errors, pricing=s.pricing,
            conversation=s.conversation, biz_opaque_callback_data=s.biz_opaque_callback_data,
            raw=s.raw,
        )
        for s in statuses
    ]
    MessageStatus.objects.bulk_create(rows, batch_size=BATCH, ignore_conflicts=True)
    _apply_best_statuses(rows)
