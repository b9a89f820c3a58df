"""Webhook ingestion: messages, statuses, echoes, history, contacts, templates and quality.

Every function here runs inside the one transaction of a delivery (webhooks.webhook_process)
and is written so that applying deliveries in any order, any number of times, leaves the same
rows: inserts are keyed by unique constraints (wamid, (wamid, status), (phone, phase, chunk),
contact identities), and every update is a commutative merge (highest status rank, newest
profile, earliest referral, latest edit…), never "last delivery wins".

Concurrency: the Config rows a delivery touches are locked (sorted, so two deliveries never
deadlock on them), which serializes the ingestion of one number and keeps its counters exact.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Case, Q, Value, When
from django.utils import timezone

from whatsapp.core.payloads import (
    HistoryChunkData,
    HistoryValue,
    MessagesValue,
    Party,
    QualityUpdate,
    StateSyncValue,
    StatusItem,
    TemplateStatusUpdate,
    UserIdUpdateValue,
    WaMessage,
    phone_number_ids,
)
from whatsapp.core.phones import at, normalize_phone

from . import sending, templates
from .models import (
    Config,
    Connection,
    Contact,
    ContactIdentity,
    HistoryChunk,
    HistorySync,
    Message,
    MessageStatus,
    TemplateStatusEvent,
)

logger = logging.getLogger(__name__)

BATCH = 1000
HISTORY_DECLINED = 2593109
# Never regress: failed > played > read > delivered > sent > pending. `played` (voice) comes
# after `read`, so it ranks above it; history's ERROR is a failure.
STATUS_RANK = {"": 0, "pending": 1, "sent": 2, "delivered": 3, "read": 4, "played": 5,
               "failed": 6}
STATUS_ALIASES = {"error": "failed"}
# Not conversation messages: they change another message (or the contact), so not counted.
NOT_COUNTED = ("edit", "revoke", "system")
Key = tuple[str, str]


# --- Routing and parking ----------------------------------------------------------------------

class Parked(Exception):
    """The delivery refers to a number that is not configured (yet, or by nobody)."""

    def __init__(self, phone_number_id: str, reason: str) -> None:
        super().__init__(reason)
        self.phone_number_id = phone_number_id
        self.reason = reason


@dataclass
class Route:
    config: Config
    organization_id: int


def route(ctx, phone_number_id: str) -> Route:
    """The configured number a change is for; parks the whole delivery otherwise.

    On first use, locks every number the delivery mentions in sorted order and checks them
    all: a delivery spanning several numbers is applied entirely or parked entirely (on the
    first unconfigured number; it re-parks on the next one if that is still not ready).
    """
    if ctx.routes is None:
        ctx.routes = {}
        ids = phone_number_ids(ctx.delivery.changes)
        configs = {
            c.phone_number_id: c
            for c in Config.objects.select_for_update(of=("self",))
            .select_related("connection").filter(phone_number_id__in=ids)
            .order_by("phone_number_id")
        }
        for pnid in ids:
            ctx.routes[pnid] = _route_or_park(pnid, configs.get(pnid))
        if ctx.routes:
            ctx.attribute(ctx.routes[ids[0]].organization_id)
    if phone_number_id not in ctx.routes:
        raise Parked(phone_number_id, f"phone number {phone_number_id or '(none)'} is unknown")
    return ctx.routes[phone_number_id]


def _route_or_park(pnid: str, config: Config | None) -> Route:
    if config is None:
        raise Parked(pnid, f"phone number {pnid} is unknown: no connection owns it yet")
    organization_id = config.organization_id or config.connection.organization_id
    if organization_id is None or config.connection.status == Connection.Status.DISCONNECTED:
        raise Parked(pnid, f"phone number {pnid} belongs to no organization "
                           f"(connection {config.connection.status})")
    if config.status != Config.Status.CONFIGURED:
        raise Parked(pnid, f"phone number {pnid} is not configured yet ({config.status})")
    return Route(config=config, organization_id=organization_id)


def connection_touched(route_: Route) -> None:
    connection, now = route_.config.connection, timezone.now()
    # The row was just read: skip the UPDATE entirely when it is known to be recent.
    if (connection.last_webhook_at is None
            or now - connection.last_webhook_at >= Connection.TOUCH_EVERY):
        Connection.objects.filter(pk=connection.pk).touch(now)
        connection.last_webhook_at = now


# --- Small helpers ----------------------------------------------------------------------------

def _chunks(items: list, size: int = BATCH):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(d for d in (a, b) if d is not None) if (a or b) else None


# --- Contacts ---------------------------------------------------------------------------------

@dataclass
class Sighting:
    """What one item says about a person: every key it carries plus profile facts."""

    keys: list[Key]
    at: datetime | None = None
    profile_name: str = ""
    username: str = ""


def sighting(party: Party, when: datetime | None, *extra_user_ids: str) -> Sighting:
    keys: list[Key] = [(ContactIdentity.Kind.USER_ID, u)
                       for u in (party.user_id, *extra_user_ids) if u]
    phone = normalize_phone(party.wa_id)
    if phone:
        keys.append((ContactIdentity.Kind.PHONE, phone))
    return Sighting(keys=keys, at=when, profile_name=party.profile_name[:200],
                    username=party.username[:128])


class ContactBook:
    """Resolves many sightings to contacts of one organization with a few bulk queries.

    Keys seen together (a BSUID and a phone in one item) belong to one contact; when they
    point at two existing contacts, those are merged (a pre-BSUID phone-only lead meets its
    BSUID, or a username user's number becomes visible).
    """

    def __init__(self, organization_id: int) -> None:
        self.organization_id = organization_id
        self.by_key: dict[Key, Contact] = {}
        self._dirty: dict[int, Contact] = {}
        # Field values as loaded (or created), so save() writes only what changed.
        self._as_loaded: dict[int, dict] = {}

    def resolve(self, sightings: list[Sighting]) -> None:
        sightings = [s for s in sightings if s.keys]
        if not sightings:
            return
        dirty = dict(self._dirty)
        try:
            self._resolve(sightings)
        except IntegrityError:
            # Another delivery (another number of the same organization) created one of these
            # leads first; its identities are committed now, so a second pass finds them.
            logger.info("Lead created concurrently in organization %s; resolving again",
                        self.organization_id)
            self._dirty = dirty
            self._resolve(sightings)

    def _resolve(self, sightings: list[Sighting]) -> None:
        known = self._load_identities({k for s in sightings for k in s.keys})
        groups = _group_keys(sightings)
        first_seen: dict[Key, datetime | None] = {}
        for s in sightings:
            for k in s.keys:
                first_seen[k] = _earlier(first_seen.get(k, s.at), s.at)
        contacts = self._load_contacts({i.contact_id for i in known.values()})

        new_contacts: list[Contact] = []
        refresh: dict[int, Contact] = {}
        merged_into: dict[int, Contact] = {}
        for keys in groups:
            ids = sorted({known[k].contact_id for k in keys if k in known})
            ids = sorted({merged_into[i].pk if i in merged_into else i for i in ids})
            if not ids:
                contact = Contact(organization_id=self.organization_id)
                contact.set_identity([(k, first_seen[k], None) for k in keys])
                new_contacts.append(contact)
            else:
                contact = contacts[ids[0]]
                if len(ids) > 1:
                    losers = [contacts[i] for i in ids[1:]]
                    contact = contacts_merge(contact, losers)
                    merged_into.update({loser.pk: contact for loser in losers})
                    refresh[contact.pk] = contact
                if any(k not in known for k in keys):
                    refresh[contact.pk] = contact
            for k in keys:
                self.by_key[k] = contact
        # A group resolved before a later merge may still point at the merged-away contact.
        for k, contact in self.by_key.items():
            if contact.pk in merged_into:
                self.by_key[k] = merged_into[contact.pk]

        for s in sightings:
            contact = self.by_key[s.keys[0]]
            if (s.profile_name or s.username) and contact.note_profile(
                s.at, s.profile_name, s.username
            ) and contact.pk:
                self.mark(contact)
        new_identities = [k for k in first_seen if k not in known]
        if new_contacts or new_identities:
            # A savepoint only when there is something to insert (most deliveries are about
            # known leads): a lead created concurrently rolls back just these inserts.
            with transaction.atomic():
                for batch in _chunks(new_contacts):
                    Contact.objects.bulk_create(batch)
                # Unique per (organization, kind, value): never two contacts for one key.
                ContactIdentity.objects.bulk_create(
                    [ContactIdentity(organization_id=self.organization_id,
                                     contact=self.by_key[k], kind=k[0], value=k[1],
                                     first_seen_at=first_seen[k])
                     for k in new_identities],
                    batch_size=BATCH,
                )
        self._as_loaded.update((c.pk, _contact_values(c)) for c in new_contacts)
        older = [i for k, i in known.items() if k in first_seen and first_seen[k]
                 and (i.first_seen_at is None or first_seen[k] < i.first_seen_at)]
        for identity in older:
            key = (identity.kind, identity.value)
            identity.first_seen_at = first_seen[key]
            refresh[self.by_key[key].pk] = self.by_key[key]
        ContactIdentity.objects.bulk_update(older, ["first_seen_at"], batch_size=BATCH)
        for contact in refresh.values():
            contact.refresh_identity()

    def get(self, party: Party) -> Contact | None:
        if party.user_id and (ContactIdentity.Kind.USER_ID, party.user_id) in self.by_key:
            return self.by_key[(ContactIdentity.Kind.USER_ID, party.user_id)]
        phone = normalize_phone(party.wa_id)
        return self.by_key.get((ContactIdentity.Kind.PHONE, phone)) if phone else None

    def mark(self, contact: Contact) -> None:
        self._dirty[contact.pk] = contact

    def save(self) -> None:
        """Writes the marked contacts' changed fields: one UPDATE for several contacts."""
        changed: list[Contact] = []
        fields: set[str] = set()
        for contact in self._dirty.values():
            before = self._as_loaded.get(contact.pk)
            now = _contact_values(contact)
            diff = {f for f, v in now.items() if before is None or before.get(f) != v}
            if diff:
                changed.append(contact)
                fields |= diff
                self._as_loaded[contact.pk] = now
        self._dirty.clear()
        if not changed:
            return
        # update()/bulk_update() skip auto_now: leads are listed newest-activity first.
        now = timezone.now()
        for contact in changed:
            contact.updated_at = now
        fields.add("updated_at")
        if len(changed) == 1:
            Contact.objects.filter(pk=changed[0].pk).update(
                **{f: getattr(changed[0], f) for f in fields})
        else:
            Contact.objects.bulk_update(changed, sorted(fields), batch_size=BATCH)

    def _load_identities(self, keys: set[Key]) -> dict[Key, ContactIdentity]:
        found: dict[Key, ContactIdentity] = {}
        for batch in _chunks(sorted(keys)):
            # One query per batch; the (organization, kind, value) unique index serves both arms.
            match = Q()
            for kind in ContactIdentity.Kind.values:
                values = [v for k, v in batch if k == kind]
                if values:
                    match |= Q(kind=kind, value__in=values)
            for identity in ContactIdentity.objects.filter(match,
                                                           organization_id=self.organization_id):
                found[(identity.kind, identity.value)] = identity
        return found

    def _load_contacts(self, ids: set[int]) -> dict[int, Contact]:
        """Locked (in pk order): two numbers of one organization may write the same lead, and
        the merges here read-modify-write its row."""
        loaded: dict[int, Contact] = {}
        for batch in _chunks(sorted(ids)):
            loaded.update((c.pk, c) for c in Contact.objects.select_for_update()
                          .filter(pk__in=batch).order_by("pk"))
        self._as_loaded.update((pk, _contact_values(c)) for pk, c in loaded.items())
        return loaded


_CONTACT_FIELDS = [f.attname for f in Contact._meta.concrete_fields
                   if not f.primary_key and f.attname != "updated_at"]


def _contact_values(contact: Contact) -> dict:
    return {name: getattr(contact, name) for name in _CONTACT_FIELDS}


def _group_keys(sightings: list[Sighting]) -> list[list[Key]]:
    """Union-find: keys seen in the same item end up in the same group."""
    parent: dict[Key, Key] = {}

    def find(k: Key) -> Key:
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for s in sightings:
        for k in s.keys[1:]:
            parent[find(k)] = find(s.keys[0])
        find(s.keys[0])
    groups: dict[Key, list[Key]] = defaultdict(list)
    for k in parent:
        groups[find(k)].append(k)
    return [sorted(g) for g in groups.values()]


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(d for d in (a, b) if d is not None) if (a or b) else None


def contacts_merge(winner: Contact, losers: list[Contact]) -> Contact:
    """Moves the losers' identities and conversation onto the winner (same person)."""
    loser_ids = [c.pk for c in losers]
    Message.objects.filter(contact_id__in=loser_ids).update(contact=winner)
    ContactIdentity.objects.filter(contact_id__in=loser_ids).update(contact=winner)
    for loser in losers:
        if loser.profile_name or loser.username:
            winner.note_profile(loser.profile_name_at, loser.profile_name, loser.username)
        if loser.last_inbound_at:
            winner.note_inbound(loser.last_inbound_at, None)
        if loser.referral_at:
            winner.note_inbound(loser.referral_at, loser.referral)
        if loser.human_takeover_at:
            winner.note_takeover(loser.human_takeover_at)
        if loser.in_address_book is not None:
            winner.note_address_book(loser.address_book_at, loser.in_address_book,
                                     loser.saved_name)
    # Delete first: the winner is about to take one of their unique user_id/phone values.
    Contact.objects.filter(pk__in=loser_ids).delete()
    winner.save()
    logger.info("Merged contacts %s into %s", loser_ids, winner.pk)
    return winner


def contacts_change_user_id(book: ContactBook, *, previous: str, current: str, wa_id: str,
                            when: datetime | None) -> None:
    """user_id_update / user_changed_user_id: one contact keeps both ids, the old one retired.

    The previous id stays as an identity so a late message carrying it still lands on the
    same conversation.
    """
    book.resolve([sighting(Party(user_id=previous, wa_id=wa_id), None, current)])
    identity = ContactIdentity.objects.get(organization_id=book.organization_id,
                                           kind=ContactIdentity.Kind.USER_ID, value=previous)
    if when and (identity.superseded_at is None or when < identity.superseded_at):
        identity.superseded_at = when
        identity.save(update_fields=["superseded_at"])
    book.get(Party(user_id=current)).refresh_identity()


# --- Messages ---------------------------------------------------------------------------------

def _message(route_: Route, m: WaMessage, *, direction: str, source: str,
             contact: Contact | None, fallback: datetime) -> Message:
    status = STATUS_ALIASES.get(m.history_status, m.history_status)
    return Message(
        organization_id=route_.organization_id,
        config=route_.config,
        wamid=m.wamid[:255],
        direction=direction,
        source=source,
        type=m.type[:32] or "unknown",
        timestamp=at(m.timestamp, fallback),
        status=status if status in STATUS_RANK else "",
        raw=m.raw,
        contact=contact,
        body=m.body,
        media_id=m.media_id[:128],
        reply_to_wamid=m.reply_to_wamid[:255],
        target_wamid=m.target_wamid[:255],
        referral=m.referral,
        errors=m.errors,
    )


def messages_store(route_: Route, rows: list[Message]) -> list[Message]:
    """Inserts the rows whose wamid is new; merges the rest; returns the inserted ones."""
    unique: dict[str, Message] = {}
    for row in rows:
        unique.setdefault(row.wamid, row)
    existing: dict[str, Message] = {}
    for batch in _chunks(list(unique)):
        existing.update({m.wamid: m for m in Message.objects.filter(wamid__in=batch).only(
            "id", "wamid", "type", "status", "media_id", "body", "raw")})
    new = [row for wamid, row in unique.items() if wamid not in existing]
    # The Config lock makes this the only writer of these wamids for this number; a wamid
    # stored through another number (never expected) is simply not duplicated.
    Message.objects.bulk_create(new, batch_size=BATCH, ignore_conflicts=True)
    for wamid, old in existing.items():
        _message_merge(old, unique[wamid])
    # Statuses only exist for what the business sent.
    apply_stored_statuses([r.wamid for r in new if r.direction == Message.Direction.OUTBOUND])
    _apply_edits_and_revokes(new)
    _count(route_, new)
    return new


def _message_merge(old: Message, new: Message) -> None:
    """A wamid seen again: keep the best facts from both, whichever came first."""
    changed = []
    if STATUS_RANK.get(new.status, 0) > STATUS_RANK.get(old.status, 0):
        old.status = new.status
        changed.append("status")
    # History's media_placeholder gets its media from the follow-up webhook (either order).
    if new.media_id and not old.media_id:
        old.type, old.media_id, old.raw = new.type, new.media_id, new.raw
        old.body = old.body or new.body
        changed += ["type", "media_id", "raw", "body"]
    if changed:
        old.save(update_fields=changed)


def apply_stored_statuses(wamids: list[str]) -> None:
    """Sets each message's status to the highest-ranked one recorded (never lower).

    Whoever inserts a message calls this for it (statuses may have arrived first), under the
    number's Config row lock as webhook processing holds it.
    """
    _apply_best_statuses(st for batch in _chunks(wamids)
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
        for batch in _chunks(found):
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


def _apply_edits_and_revokes(new: list[Message]) -> None:
    """Applies edits/revokes to their originals, whichever of them arrived first.

    Recomputed from every stored edit: the latest edit gives the text, the earliest revoke
    the revocation time.
    """
    targets = {m.target_wamid for m in new if m.type in ("edit", "revoke") and m.target_wamid}
    targets |= {m.wamid for m in new if m.type not in ("edit", "revoke", "reaction")}
    changes: dict[str, list[Message]] = defaultdict(list)
    for batch in _chunks(sorted(targets)):
        for m in Message.objects.filter(target_wamid__in=batch, type__in=["edit", "revoke"]).only(
            "wamid", "type", "target_wamid", "timestamp", "body"
        ):
            changes[m.target_wamid].append(m)
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
    counted = [m for m in new if m.type not in NOT_COUNTED]
    if not counted:
        return
    config = route_.config
    config.messages_in_count += sum(m.direction == Message.Direction.INBOUND for m in counted)
    config.messages_out_count += sum(m.direction == Message.Direction.OUTBOUND for m in counted)
    config.last_message_at = _later(config.last_message_at, max(m.timestamp for m in counted))
    Config.objects.filter(pk=config.pk).update(
        messages_in_count=config.messages_in_count,
        messages_out_count=config.messages_out_count,
        last_message_at=config.last_message_at,
    )


# --- Field: messages --------------------------------------------------------------------------

def messages_ingest(route_: Route, value: MessagesValue) -> None:
    """Inbound messages (every type) and statuses of one `messages` change."""
    now = timezone.now()
    book = ContactBook(route_.organization_id)
    inbound = [(m, value.party(user_id=m.from_user_id, wa_id=m.from_)) for m in value.messages]
    statuses = [(s, value.party(user_id=s.recipient_user_id, wa_id=s.recipient_id))
                for s in value.statuses]
    book.resolve([sighting(p, at(m.timestamp, now)) for m, p in inbound]
                 + [sighting(p, at(s.timestamp, now)) for s, p in statuses])

    rows = [_message(route_, m, direction=Message.Direction.INBOUND,
                     source=Message.Source.CLOUD_API, contact=book.get(p), fallback=now)
            for m, p in inbound]
    messages_store(route_, rows)
    for m, p in inbound:
        contact = book.get(p)
        when = at(m.timestamp, now)
        if m.type == "system":
            _system_message(book, m, p, when)
        elif contact is not None:
            contact.note_inbound(when, m.referral)
            book.mark(contact)
    book.save()
    statuses_ingest(route_, [s for s, _ in statuses], now)


def _system_message(book: ContactBook, m: WaMessage, party: Party, when: datetime) -> None:
    """user_changed_user_id / user_changed_number: the identity moves, the conversation stays."""
    system = m.system
    previous = str(system.get("previous_user_id") or m.from_user_id or "")
    current = str(system.get("user_id") or "")
    new_phone = str(system.get("wa_id") or system.get("new_wa_id") or "")
    if previous and current and previous != current:
        contacts_change_user_id(book, previous=previous, current=current,
                                wa_id=new_phone or party.wa_id, when=when)
    elif new_phone:
        book.resolve([sighting(Party(user_id=party.user_id, wa_id=party.wa_id), when),
                      sighting(Party(user_id=party.user_id, wa_id=new_phone), when)])


def statuses_ingest(route_: Route, statuses: list[StatusItem], now: datetime) -> None:
    """One MessageStatus per (wamid, status); messages move only up the status ranking."""
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
    if not rows:
        return
    MessageStatus.objects.bulk_create(rows, batch_size=BATCH, ignore_conflicts=True)
    # This delivery's statuses are enough (no read-back): every earlier status was applied
    # when it was stored, or is when its message is inserted (apply_stored_statuses), and a
    # message only ever moves up.
    _apply_best_statuses(rows)
    sending.outbound_statuses_apply(route_.organization_id, statuses)


# --- Field: smb_message_echoes ----------------------------------------------------------------

def echoes_ingest(route_: Route, value: MessagesValue) -> None:
    """Messages the business sent from the phone app: outbound, and a person is handling it.

    They never open the service window (no last_inbound_at) and never trigger automation.
    """
    now = timezone.now()
    book = ContactBook(route_.organization_id)
    echoes = [(m, value.party(user_id=m.to_user_id, wa_id=m.to)) for m in value.echoes]
    book.resolve([sighting(p, at(m.timestamp, now)) for m, p in echoes])
    rows = [_message(route_, m, direction=Message.Direction.OUTBOUND,
                     source=Message.Source.PHONE_APP, contact=book.get(p), fallback=now)
            for m, p in echoes]
    messages_store(route_, rows)
    for m, p in echoes:
        contact = book.get(p)
        if contact is not None:
            contact.note_takeover(at(m.timestamp, now))
            book.mark(contact)
    book.save()


# --- Field: history ---------------------------------------------------------------------------

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
        sighting(t.party, min((at(m.timestamp) for m in t.messages if m.timestamp), default=None))
        for t in chunk.threads
    ])
    rows = []
    for thread in chunk.threads:
        contact = book.get(thread.party)
        for m in thread.messages:
            # `to` is present only on what the business sent; some BSPs relay from_me instead.
            outbound = bool(m.to) or m.from_me or (bool(business)
                                                   and normalize_phone(m.from_) == business)
            direction = Message.Direction.OUTBOUND if outbound else Message.Direction.INBOUND
            rows.append(_message(route_, m, direction=direction, source=Message.Source.HISTORY,
                                 contact=contact, fallback=now))
    inserted = messages_store(route_, rows)
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
    rows = [_message(route_, m, direction=Message.Direction.INBOUND,
                     source=Message.Source.HISTORY, contact=book.get(p), fallback=now)
            for m, p in inbound]
    rows += [_message(route_, m, direction=Message.Direction.OUTBOUND,
                      source=Message.Source.HISTORY, contact=book.get(p), fallback=now)
             for m, p in outbound]
    inserted = messages_store(route_, rows)
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


# --- Field: smb_app_state_sync ----------------------------------------------------------------

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


# --- Field: user_id_update --------------------------------------------------------------------

def user_id_update_ingest(route_: Route, value: UserIdUpdateValue) -> None:
    book = ContactBook(route_.organization_id)
    for change in value.changes:
        contacts_change_user_id(book, previous=change.previous, current=change.current,
                                wa_id=change.wa_id, when=at(change.timestamp))
    for party in value.contacts:
        if party.profile_name and party.known:
            book.resolve([sighting(party, None)])
    book.save()


# --- Fields without a phone number id ---------------------------------------------------------

def template_status_record(update: TemplateStatusUpdate) -> TemplateStatusEvent | None:
    if not update.template_id or not update.event:
        logger.warning("message_template_status_update without template id/event: stored only")
        return None
    connection = Connection.objects.active().filter(waba_id=update.waba_id).first()
    event, _ = TemplateStatusEvent.objects.get_or_create(
        waba_id=update.waba_id, template_id=update.template_id, event=update.event,
        event_at=at(update.time),
        defaults={
            "connection": connection,
            "organization_id": connection.organization_id if connection else None,
            "template_name": update.name[:512], "language": update.language[:16],
            "category": update.category[:32], "reason": update.reason, "info": update.info,
        },
    )
    if connection:
        Connection.objects.filter(pk=connection.pk).touch()
    templates.template_status_follow(event)
    return event


def quality_update_apply(update: QualityUpdate) -> Config | None:
    """Matched by display number + WABA (the value has no phone_number_id); newest wins."""
    wanted = normalize_phone(update.display_phone_number)
    candidates = Config.objects.select_for_update(of=("self",)).filter(
        Q(connection__waba_id=update.waba_id),
        ~Q(connection__status=Connection.Status.DISCONNECTED),
    ).order_by("phone_number_id")
    config = next((c for c in candidates
                   if wanted and normalize_phone(c.display_phone_number) == wanted), None)
    if config is None:
        logger.warning("phone_number_quality_update for an unknown number of WABA %s: stored only",
                       update.waba_id)
        return None
    when = at(update.time)
    if config.quality_event_at and when and when < config.quality_event_at:
        return config
    config.quality_event = update.event[:32]
    config.quality_event_at = when
    if update.messaging_limit:
        config.messaging_limit = update.messaging_limit[:32]
    config.save(update_fields=["quality_event", "quality_event_at", "messaging_limit",
                               "updated_at"])
    Connection.objects.filter(pk=config.connection_id).touch()
    return config
