"""Messages, statuses and echoes of one number, stored exactly once in any order.

Inserts are keyed by unique constraints (wamid, (wamid, status)) and every update is a
commutative merge (highest status rank, latest edit, earliest revoke), never "last delivery
wins"."""

import logging
from collections import defaultdict
from datetime import datetime

from django.utils import timezone

from whatsapp.core import sqlbatch
from whatsapp.core.payloads import (
    MessagesValue,
    Party,
    WaMessage,
)
from whatsapp.core.phones import at, normalize_phone
from whatsapp.events import facts
from whatsapp.events.outbox import emit
from whatsapp.models import (
    Contact,
    ContactIdentity,
    Message,
    PhoneNumber,
)

from . import livesql
from .bulk import messages_insert_new
from .contacts import (
    ContactBook,
    Sighting,
    chunks,
    contacts_change_user_id,
    later,
    sighting,
)
from .media import media_track
from .message_statuses import (
    STATUS_ALIASES,
    STATUS_RANK,
    apply_stored_statuses,
    statuses_ingest,
)
from .routing import Route

logger = logging.getLogger(__name__)

# Not conversation messages: they change another message, so not counted.
NOT_COUNTED = ("edit", "revoke")


def message_row(route_: Route, m: WaMessage, *, direction: str, source: str,
                contact: Contact | None, fallback: datetime, now: datetime | None = None) -> dict:
    """The Message column values of one item, as a plain dict (bulk.messages_insert_new)."""
    status = STATUS_ALIASES.get(m.history_status, m.history_status)
    return {
        "organization_id": route_.organization_id,
        "config_id": route_.config.pk,
        "wamid": m.wamid[:255],
        "direction": direction,
        "source": source,
        "type": m.type[:32] or "unknown",
        "timestamp": at(m.timestamp, fallback),
        "status": status if status in STATUS_RANK else "",
        "raw": m.raw,
        "created_at": now or fallback,
        "contact_id": contact.pk if contact is not None else None,
        "body": m.body,
        "media_id": m.media_id[:128],
        "reply_to_wamid": m.reply_to_wamid[:255],
        "target_wamid": m.target_wamid[:255],
        "referral": m.referral,
        "errors": m.errors,
    }


def messages_store(route_: Route, rows: list[dict]) -> list[dict]:
    """Inserts the rows whose wamid is new (one insert-or-ignore for all of them); merges the
    rest into the stored ones; returns the inserted rows (on PostgreSQL each with its "id")."""
    unique: dict[str, dict] = {}
    for row in rows:
        unique.setdefault(row["wamid"], row)
    # The PhoneNumber lock makes this the only writer of these wamids for this number; a wamid
    # stored through another number (never expected) is simply not duplicated.
    if sqlbatch.is_postgresql() and len(unique) <= livesql.LIVE_ROWS:
        ids = livesql.messages_insert(list(unique.values()))
        for wamid, pk in ids.items():
            unique[wamid]["id"] = pk
        inserted = set(ids)
    else:
        inserted = messages_insert_new(list(unique.values()))
    new = [row for wamid, row in unique.items() if wamid in inserted]
    got_media = [r["wamid"] for r in new if r["media_id"]]
    seen = [wamid for wamid in unique if wamid not in inserted]
    for batch in chunks(seen):
        for old in Message.objects.filter(wamid__in=batch).only(
                "id", "wamid", "type", "status", "media_id", "body", "raw"):
            if _message_merge(old, unique[old.wamid]):
                got_media.append(old.wamid)
    media_track(got_media)
    # Statuses only exist for what the business sent.
    apply_stored_statuses([r["wamid"] for r in new if r["direction"] == Message.Direction.OUTBOUND])
    _apply_edits_and_revokes(new)
    _count(route_, new)
    return new


def _message_merge(old: Message, new: dict) -> bool:
    """A wamid seen again: keep the best facts from both, whichever came first. True when it
    brought the media id (history's placeholder meets its follow-up)."""
    changed = []
    if STATUS_RANK.get(new["status"], 0) > STATUS_RANK.get(old.status, 0):
        old.status = new["status"]
        changed.append("status")
    # History's media_placeholder gets its media from the follow-up webhook (either order).
    if new["media_id"] and not old.media_id:
        old.type, old.media_id, old.raw = new["type"], new["media_id"], new["raw"]
        old.body = old.body or new["body"]
        changed += ["type", "media_id", "raw", "body"]
    if changed:
        old.save(update_fields=changed)
    return "media_id" in changed


def _apply_edits_and_revokes(new: list[Message]) -> None:
    """Applies edits/revokes to their originals, whichever of them arrived first.

    Recomputed from every stored edit: the latest edit gives the text, the earliest revoke
    the revocation time.
    """
    targets = {m["target_wamid"] for m in new
               if m["type"] in ("edit", "revoke") and m["target_wamid"]}
    targets |= {m["wamid"] for m in new if m["type"] not in ("edit", "revoke", "reaction")}
    if not targets:
        found = []
    elif sqlbatch.is_postgresql():
        found = livesql.changes_of(sorted(targets))
    else:
        found = [m for batch in chunks(sorted(targets))
                 for m in Message.objects.filter(target_wamid__in=batch,
                                                 type__in=["edit", "revoke"])
                 .only("wamid", "type", "target_wamid", "timestamp", "body")]
    changes: dict[str, list[Message]] = defaultdict(list)
    for m in found:
        changes[m.target_wamid].append(m)
    for row in new:
        if row["wamid"] in changes and row["type"] not in NOT_COUNTED:
            row["edited"] = True  # what it says now is the stored edit's (_emit_received)
    for target, found in changes.items():
        edits = sorted((m for m in found if m.type == "edit"), key=lambda m: (m.timestamp, m.wamid))
        revokes = sorted(m.timestamp for m in found if m.type == "revoke")
        update = {}
        if edits:
            update.update(body=edits[-1].body, edited_at=edits[-1].timestamp)
        if revokes:
            update["revoked_at"] = revokes[0]
        Message.objects.filter(wamid=target).exclude(type__in=["edit", "revoke"]).update(**update)


def _count(route_: Route, new: list[Message]) -> None:
    counted = [m for m in new if m["type"] not in NOT_COUNTED]
    if not counted:
        return
    config = route_.config
    inbound = sum(m["direction"] == Message.Direction.INBOUND for m in counted)
    config.messages_in_count += inbound
    config.messages_out_count += len(counted) - inbound
    config.last_message_at = later(config.last_message_at, max(m["timestamp"] for m in counted))
    PhoneNumber.objects.filter(pk=config.pk).update(
        messages_in_count=config.messages_in_count,
        messages_out_count=config.messages_out_count,
        last_message_at=config.last_message_at,
    )


def messages_ingest(route_: Route, value: MessagesValue) -> None:
    """Inbound messages (every type) and statuses of one `messages` change."""
    conversation_ingest(route_, [value], [])


def echoes_ingest(route_: Route, value: MessagesValue) -> None:
    """Messages the business sent from the phone app: outbound, and a person is handling it.

    They never open the service window (no last_inbound_at) and never trigger automation.
    """
    conversation_ingest(route_, [], [value])


def conversation_ingest(route_: Route, values: list[MessagesValue],
                        echo_values: list[MessagesValue]) -> None:
    """The `messages` and `smb_message_echoes` changes of one number, however many deliveries
    they came in: the leads resolved at once, one insert-or-ignore for every message, one
    UPDATE per target status. Any order, any duplicates: the result is the same."""
    now = timezone.now()
    book = ContactBook(route_.organization_id)
    inbound = [(m, v.party(user_id=m.from_user_id, wa_id=m.from_))
               for v in values for m in v.messages]
    statuses = [(s, v.party(user_id=s.recipient_user_id, wa_id=s.recipient_id))
                for v in values for s in v.statuses]
    echoes = [(m, v.party(user_id=m.to_user_id, wa_id=m.to))
              for v in echo_values for m in v.echoes]
    book.resolve([sighting(p, at(m.timestamp, now)) for m, p in inbound]
                 + [_lookup(sighting(p, at(s.timestamp, now))) for s, p in statuses]
                 + [sighting(p, at(m.timestamp, now)) for m, p in echoes])

    # System messages (a BSUID or number change) are facts about the contact, never chat
    # messages: they move the identity and are kept only in the raw webhook log.
    rows = [message_row(route_, m, direction=Message.Direction.INBOUND,
                        source=Message.Source.CLOUD_API, contact=book.get(p), fallback=now)
            for m, p in inbound if m.type != "system"]
    rows += [message_row(route_, m, direction=Message.Direction.OUTBOUND,
                         source=Message.Source.PHONE_APP, contact=book.get(p), fallback=now)
             for m, p in echoes]
    new = messages_store(route_, rows)
    shared: list[Sighting] = []
    for m, p in inbound:
        contact = book.get(p)
        when = at(m.timestamp, now)
        if m.type == "system":
            _system_message(book, m, p, when)
        elif contact is not None:
            contact.note_inbound(when, m.referral)
            book.mark(contact)
            shared += _shared_phones(m, p, when)
    taken = {}
    for m, p in echoes:
        contact = book.get(p)
        if contact is not None:
            was = contact.taken_over
            contact.note_takeover(at(m.timestamp, now))
            if contact.taken_over and not was:
                taken[contact.pk] = contact
            book.mark(contact)
    book.save()
    if shared:
        # After the save: a merge (the number was already another lead's) reads fresh rows.
        book.resolve(shared)
        book.save()
        _emit_received(new)
    else:
        _emit_received(new, route_, book.contacts())
    # A person answered on the phone app: automation stays quiet until it is handed back.
    emit(*(facts.human_takeover(c, c.human_takeover_at) for _, c in sorted(taken.items())))
    statuses_ingest(route_, [s for s, _ in statuses], now)


def _lookup(seen: Sighting) -> Sighting:
    seen.lookup_only = True  # a status: the lead is only looked up, never written
    return seen


def _emit_received(new: list[dict], route_: Route | None = None,
                   contacts: dict[int, Contact] | None = None) -> None:
    """message.received for each lead message stored for the first time (inbound only: phone-app
    echoes are announced as a takeover; system notices never become messages).

    With the batch's contacts as saved (`contacts`, by pk) and the rows' ids, the events are
    built from memory; otherwise (a merge may have moved a message to another lead) from the
    stored rows."""
    received = [r for r in new
                if r["contact_id"] is not None and r["direction"] == Message.Direction.INBOUND]
    if not received:
        return
    if contacts is not None and all("id" in r and r["contact_id"] in contacts
                                    and not r.get("edited") for r in received):
        stored = [_as_message(r, route_.config) for r in received]
        emit(*(facts.message_received(m, contacts[m.contact_id])
               for m in sorted(stored, key=_arrival)))
        return
    wamids = [r["wamid"] for r in received]
    stored = [m for batch in chunks(wamids)
              for m in Message.objects.filter(wamid__in=batch)
              .select_related("contact", "config")]
    emit(*(facts.message_received(m, m.contact) for m in sorted(stored, key=_arrival)))


_MESSAGE_FIELDS = ("organization_id", "wamid", "direction", "source", "type", "timestamp",
                   "status", "contact_id", "body", "media_id", "reply_to_wamid", "target_wamid",
                   "referral", "errors", "created_at")


def _as_message(row: dict, config: PhoneNumber) -> Message:
    """The Message a row just inserted is (what an event says of it), without reading it."""
    return Message(id=row["id"], config=config, raw=row["raw"],
                   **{f: row[f] for f in _MESSAGE_FIELDS})


def _arrival(m: Message) -> tuple:
    return (m.timestamp, m.wamid)


def _shared_phones(m: WaMessage, party: Party, when: datetime) -> list[Sighting]:
    """The lead's answer to our contact-information request (`contacts` with origin
    `contact_request`): its own number, attached to the same lead (every identity kept). A
    contact card shared on the lead's own initiative is someone else's: never attached."""
    if m.type != "contacts":
        return []
    found = []
    for card in m.raw.get("contacts") or []:
        if not isinstance(card, dict) or card.get("origin") != "contact_request":
            continue
        for phone in card.get("phones") or []:
            number = normalize_phone(str(phone.get("wa_id") or phone.get("phone") or "")
                                     if isinstance(phone, dict) else "")
            if number:
                seen = sighting(party, when)
                seen.keys.append((ContactIdentity.Kind.PHONE, number))
                found.append(seen)
    return found


def _system_message(book: ContactBook, m: WaMessage, party: Party, when: datetime) -> None:
    """user_changed_user_id / user_changed_number: the identity moves, the conversation stays.

    `from` (when present) is the old number and `system.wa_id` the new one; whether Meta also
    sends `from_user_id` is unconfirmed, so it is only a fallback for `previous_user_id`.
    """
    system = m.system
    previous = str(system.get("previous_user_id") or m.from_user_id or "")
    current = str(system.get("user_id") or "")
    new_phone = str(system.get("wa_id") or system.get("new_wa_id") or "")
    if previous and current and previous != current:
        contacts_change_user_id(book, previous=previous, current=current,
                                wa_id=new_phone or party.wa_id, previous_wa_id=party.wa_id,
                                when=when)
    elif new_phone and party.known:
        # A number change without a BSUID change (not documented, but harmless): same person.
        contacts_change_user_id(book, previous=party.user_id, current=party.user_id,
                                wa_id=new_phone, previous_wa_id=party.wa_id, when=when)
    else:
        logger.warning("System message %s (%s) without the ids it should carry: stored only",
                       m.wamid, system.get("type"))
