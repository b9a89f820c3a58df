"""Leads: contacts and their identities (BSUID, phone), resolved in bulk and merged when two
keys turn out to be one person."""

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from whatsapp.core import sqlbatch
from whatsapp.core.payloads import (
    Party,
)
from whatsapp.core.phones import normalize_phone
from whatsapp.core.unionfind import UnionFind
from whatsapp.events import facts
from whatsapp.events.outbox import emit
from whatsapp.models import (
    Contact,
    ContactIdentity,
    Message,
)

from . import livesql

logger = logging.getLogger(__name__)

BATCH = 1000

Key = tuple[str, str]


def chunks(items: list, size: int = BATCH):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def later(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(d for d in (a, b) if d is not None) if (a or b) else None


@dataclass
class Sighting:
    """What one item says about a person: every key it carries plus profile facts."""

    keys: list[Key]
    at: datetime | None = None
    profile_name: str = ""
    username: str = ""
    # The caller only looks the person up (a status: whom our message went to) and never
    # writes the lead itself: when the item says nothing new, its lead is not even loaded.
    lookup_only: bool = False


@dataclass(slots=True)
class Known:
    """A stored identity, and what its lead's profile says (None when not read with it)."""

    id: int
    kind: str
    value: str
    contact_id: int
    first_seen_at: datetime | None
    profile: tuple | None = None


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
        # Lead events, written by save(): leads created, and identities changed (pk →
        # (phone, BSUID) before the first change, contacts merged into it).
        self._created: dict[int, Contact] = {}
        self._identified: dict[int, tuple[tuple[str, str], set[int]]] = {}

    def resolve(self, sightings: list[Sighting]) -> None:
        sightings = [s for s in sightings if s.keys]
        if not sightings:
            return
        dirty, created = dict(self._dirty), dict(self._created)
        identified = {pk: (before, set(ids)) for pk, (before, ids) in self._identified.items()}
        try:
            self._resolve(sightings)
        except IntegrityError:
            # Another delivery (another number of the same organization) created one of these
            # leads first; its identities are committed now, so a second pass finds them.
            logger.info("Lead created concurrently in organization %s; resolving again",
                        self.organization_id)
            self._dirty, self._created, self._identified = dirty, created, identified
            self._resolve(sightings)

    def _resolve(self, sightings: list[Sighting]) -> None:
        known = self._load_identities({k for s in sightings for k in s.keys})
        sightings = _telling(sightings, known)
        groups = _group_keys(sightings)
        first_seen: dict[Key, datetime | None] = {}
        for s in sightings:
            for k in s.keys:
                first_seen[k] = earlier(first_seen.get(k, s.at), s.at)
        contacts = self._load_contacts({known[k].contact_id for k in first_seen if k in known})

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
                    self._note_identity(contact, merged=[c.pk for c in losers])
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
                for batch in chunks(new_contacts):
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
        self._created.update((c.pk, c) for c in new_contacts)
        older = [i for k, i in known.items() if k in first_seen and first_seen[k]
                 and (i.first_seen_at is None or first_seen[k] < i.first_seen_at)]
        for identity in older:
            key = (identity.kind, identity.value)
            identity.first_seen_at = first_seen[key]
            refresh[self.by_key[key].pk] = self.by_key[key]
        ContactIdentity.objects.bulk_update(
            [ContactIdentity(pk=i.id, first_seen_at=i.first_seen_at) for i in older],
            ["first_seen_at"], batch_size=BATCH)
        for contact in refresh.values():
            self.refresh(contact)

    def refresh(self, contact: Contact) -> None:
        """Recomputes the contact's current BSUID and phone; a change is a lead event."""
        self._note_identity(contact)
        contact.refresh_identity()

    def _note_identity(self, contact: Contact, merged: list[int] = ()) -> None:
        before, ids = self._identified.get(contact.pk, ((contact.wa_id, contact.user_id), set()))
        self._identified[contact.pk] = (before, ids | set(merged))

    def get(self, party: Party) -> Contact | None:
        if party.user_id and (ContactIdentity.Kind.USER_ID, party.user_id) in self.by_key:
            return self.by_key[(ContactIdentity.Kind.USER_ID, party.user_id)]
        phone = normalize_phone(party.wa_id)
        return self.by_key.get((ContactIdentity.Kind.PHONE, phone)) if phone else None

    def contacts(self) -> dict[int, Contact]:
        """The contacts resolved so far, by pk (as saved, after `save`)."""
        return {c.pk: c for c in self.by_key.values()}

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
        self._emit_events()
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

    def _emit_events(self) -> None:
        """contact.created for new leads, contact.identified for a changed phone or BSUID
        (or a merge), in the delivery's transaction."""
        alive = {c.pk: c for c in self.by_key.values()}
        pending = [facts.contact_created(alive[pk]) for pk in sorted(self._created)
                   if pk in alive]
        for pk, ((phone, user_id), merged) in sorted(self._identified.items()):
            contact = alive.get(pk)
            if contact is None or pk in self._created:
                continue
            if merged or (contact.wa_id, contact.user_id) != (phone, user_id):
                pending.append(facts.contact_identified(
                    contact, previous_phone=phone, previous_user_id=user_id,
                    merged_contact_ids=sorted(merged)))
        self._created.clear()
        self._identified.clear()
        emit(*pending)

    def _load_identities(self, keys: set[Key]) -> dict[Key, Known]:
        if sqlbatch.is_postgresql():
            return {(row[1], row[2]): Known(*row[:5], profile=row[5:])
                    for row in livesql.identities_of(self.organization_id, sorted(keys))}
        found: dict[Key, Known] = {}
        for batch in chunks(sorted(keys)):
            # One query per batch; the (organization, kind, value) unique index serves both arms.
            match = Q()
            for kind in ContactIdentity.Kind.values:
                values = [v for k, v in batch if k == kind]
                if values:
                    match |= Q(kind=kind, value__in=values)
            for i in ContactIdentity.objects.filter(match, organization_id=self.organization_id):
                found[(i.kind, i.value)] = Known(i.pk, i.kind, i.value, i.contact_id,
                                                 i.first_seen_at)
        return found

    def _load_contacts(self, ids: set[int]) -> dict[int, Contact]:
        """Locked (in pk order): two numbers of one organization may write the same lead, and
        the merges here read-modify-write its row."""
        loaded: dict[int, Contact] = {}
        if sqlbatch.is_postgresql():
            loaded = {c.pk: c for c in livesql.contacts_locked(sorted(ids))} if ids else {}
        else:
            for batch in chunks(sorted(ids)):
                loaded.update((c.pk, c) for c in Contact.objects.select_for_update()
                              .filter(pk__in=batch).order_by("pk"))
        self._as_loaded.update((pk, _contact_values(c)) for pk, c in loaded.items())
        return loaded


def _telling(sightings: list[Sighting], known: dict[Key, Known]) -> list[Sighting]:
    """The sightings that may change something: all but the lookups whose every key is stored
    for one lead (no earlier than this item), whose profile is no newer than the lead's, and
    whose lead no other sighting of the batch touches. Leaving those out changes nothing."""
    quiet: dict[int, int] = {}
    for n, s in enumerate(sightings):
        found = [known.get(k) for k in s.keys] if s.lookup_only else [None]
        if any(i is None or i.profile is None or (
                s.at and (i.first_seen_at is None or s.at < i.first_seen_at)) for i in found):
            continue
        if len({i.contact_id for i in found}) != 1:
            continue
        if (s.profile_name or s.username) and _newer_profile(s, found[0].profile):
            continue
        quiet[n] = found[0].contact_id
    if not quiet:
        return sightings
    touched = {known[k].contact_id for n, s in enumerate(sightings) if n not in quiet
               for k in s.keys if k in known}
    return [s for n, s in enumerate(sightings) if n not in quiet or quiet[n] in touched]


_FLOOR = datetime.min.replace(tzinfo=UTC)


def _newer_profile(s: Sighting, profile: tuple) -> bool:
    """Whether Contact.note_profile would take this sighting's profile over `profile`
    (profile_name_at, profile_name, username)."""
    at, name, username = profile
    return (s.at or _FLOOR, s.profile_name, s.username) > (at or _FLOOR, name, username)


_CONTACT_FIELDS = [f.attname for f in Contact._meta.concrete_fields
                   if not f.primary_key and f.attname != "updated_at"]


def _contact_values(contact: Contact) -> dict:
    return {name: getattr(contact, name) for name in _CONTACT_FIELDS}


def _group_keys(sightings: list[Sighting]) -> list[list[Key]]:
    """Union-find: keys seen in the same item end up in the same group."""
    sets = UnionFind()
    for s in sightings:
        sets.join(s.keys)
    groups: dict[Key, list[Key]] = defaultdict(list)
    for k in sets.parent:
        groups[sets.find(k)].append(k)
    return [sorted(g) for g in groups.values()]


def earlier(a: datetime | None, b: datetime | None) -> datetime | None:
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
        winner.handed_back_at = later(winner.handed_back_at, loser.handed_back_at)
        if loser.in_address_book is not None:
            winner.note_address_book(loser.address_book_at, loser.in_address_book,
                                     loser.saved_name)
    # Delete first: the winner is about to take one of their unique user_id/phone values.
    Contact.objects.filter(pk__in=loser_ids).delete()
    winner.save()
    logger.info("Merged contacts %s into %s", loser_ids, winner.pk)
    return winner


def contacts_change_user_id(book: ContactBook, *, previous: str, current: str, wa_id: str,
                            when: datetime | None, previous_wa_id: str = "") -> None:
    """user_id_update / user_changed_user_id / user_changed_number: one contact keeps every
    identity, the old ones retired.

    The previous BSUID (and, when the number changed, the previous phone) stays as an identity
    so a late message carrying it still lands on the same conversation; the contact's current
    BSUID and phone become the new ones.
    """
    old_phone = normalize_phone(previous_wa_id)
    new_phone = normalize_phone(wa_id)
    book.resolve([sighting(Party(user_id=previous, wa_id=old_phone or new_phone), None, current),
                  sighting(Party(user_id=current, wa_id=new_phone), when)])
    retired = []
    if previous and previous != current:
        retired.append((ContactIdentity.Kind.USER_ID, previous))
    if old_phone and new_phone and old_phone != new_phone:
        retired.append((ContactIdentity.Kind.PHONE, old_phone))
    contact = book.get(Party(user_id=current, wa_id=new_phone))
    for kind, value in retired:
        identity = ContactIdentity.objects.get(organization_id=book.organization_id,
                                               kind=kind, value=value)
        if when and (identity.superseded_at is None or when < identity.superseded_at):
            identity.superseded_at = when
            identity.save(update_fields=["superseded_at"])
    book.refresh(contact)
