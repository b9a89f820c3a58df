"""A lead's data on request (LGPD): export it, erase it; and Meta's data-deletion callback.

Erasure is a durable `ErasureRequest` run by a Celery task (`erase_data`, acks_late): the
worker claims the row (`running`, with a lease of WHATSAPP_ERASURE_LEASE_SECONDS), removes
everything in one transaction and marks it `done` in that same transaction. A worker killed
mid-way rolls its work back and leaves the row `running`; the sweep (`sweep_erasures`, beat)
takes it again once the lease ran out. Every step selects by the identifiers the request
captured, so running it again removes nothing twice and finds nothing left.

What a lead's erasure removes (organization-scoped):
- the contact and every identity (BSUIDs, phones) it was known by;
- its messages (inbound, phone-app echoes, history; text, media ids, raw items) and every
  status row about them or addressed to its phone or BSUID;
- its sends: queued or sending ones are cancelled, and every send to it keeps only what the
  usage report needs (number, time, Meta's pricing, wamid): recipient, text, parameters,
  request and response bodies, errors and the send's event trail are removed;
- the raw body of every webhook delivery that mentions one of its phones or BSUIDs (the row,
  its SHA-256 and processing columns stay, as after the retention; such a delivery can no
  longer be replayed);
- the media files copied from its messages into our storage (`media.py`), deleted from the
  storage before their rows go: a file has no other reference, so one left behind would be
  kept for good (a storage that fails fails the erasure, which the sweep runs again; deleting
  a file already gone is no error).
The audit log keeps that it happened (contact id and counts, no personal data).
"""

import hashlib
import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.models import AuditLog
from audit.services import audit_record
from whatsapp.core import jobs
from whatsapp.core.signed_request import SignedRequest
from whatsapp.models import (
    Contact,
    ContactIdentity,
    ErasureRequest,
    Message,
    MessageMedia,
    MessageStatus,
    OutboundEvent,
    OutboundMessage,
    WebhookLog,
)

from .media import media_storage

logger = logging.getLogger(__name__)
S = ErasureRequest.State
OUT = OutboundMessage.Status


def _iso(value):
    return value.isoformat() if value else None


def contact_export(contact: Contact, *, user=None, request=None) -> dict:
    """Everything the product holds about one lead, as JSON (audited)."""
    messages = Message.objects.filter(contact=contact).order_by("timestamp", "pk")
    sends = OutboundMessage.objects.filter(contact=contact).order_by("created_at")
    data = {
        "exportedAt": timezone.now().isoformat(),
        "contact": {
            "id": contact.pk, "userId": contact.user_id, "phone": contact.wa_id,
            "username": contact.username, "profileName": contact.profile_name,
            "savedName": contact.saved_name, "inAddressBook": contact.in_address_book,
            "lastInboundAt": _iso(contact.last_inbound_at),
            "humanTakeoverAt": _iso(contact.human_takeover_at), "referral": contact.referral,
            "createdAt": _iso(contact.created_at),
        },
        "identities": [{"kind": i.kind, "value": i.value, "firstSeenAt": _iso(i.first_seen_at),
                        "supersededAt": _iso(i.superseded_at)}
                       for i in contact.identities.order_by("pk")],
        "messages": [{"wamid": m.wamid, "direction": m.direction, "source": m.source,
                      "type": m.type, "timestamp": _iso(m.timestamp), "text": m.body,
                      "mediaId": m.media_id or None, "status": m.status,
                      "replyTo": m.reply_to_wamid or None, "referral": m.referral}
                     for m in messages],
        "outboundMessages": [{"id": str(o.pk), "type": o.kind, "to": o.to, "text": o.text,
                              "template": o.template_name or None, "parameters": o.parameters,
                              "status": o.status, "createdAt": _iso(o.created_at),
                              "sentAt": _iso(o.sent_at), "deliveredAt": _iso(o.delivered_at),
                              "readAt": _iso(o.read_at)}
                             for o in sends],
    }
    audit_record(action=AuditLog.Action.CONTACT_EXPORTED, organization=contact.organization,
                 actor=user, target=f"contact:{contact.pk}", request=request,
                 metadata={"messages": len(data["messages"]),
                           "outbound_messages": len(data["outboundMessages"])})
    return data


def erasure_request(contact: Contact, *, user=None, request=None) -> ErasureRequest:
    """Records the request (with what identifies the lead) and enqueues it after commit; a
    request already open for this contact is returned instead of a second one (a unique
    constraint settles two at once)."""
    try:
        return _erasure_create(contact, user=user, request=request)
    except IntegrityError:
        return ErasureRequest.objects.get(kind=ErasureRequest.Kind.CONTACT, contact_id=contact.pk,
                                          state__in=[S.PENDING, S.RUNNING])


def _erasure_create(contact: Contact, *, user, request) -> ErasureRequest:
    with transaction.atomic():
        open_ = ErasureRequest.objects.filter(kind=ErasureRequest.Kind.CONTACT,
                                              contact_id=contact.pk,
                                              state__in=[S.PENDING, S.RUNNING]).first()
        if open_ is not None:
            return open_
        identities = list(contact.identities.values_list("kind", "value"))
        user_ids = {v for k, v in identities if k == ContactIdentity.Kind.USER_ID}
        phones = {v for k, v in identities if k == ContactIdentity.Kind.PHONE}
        erasure = ErasureRequest.objects.create(
            kind=ErasureRequest.Kind.CONTACT, organization_id=contact.organization_id,
            contact_id=contact.pk, requested_by=user if user and user.is_authenticated else None,
            subject={"user_ids": sorted((user_ids | {contact.user_id}) - {""}),
                     "phones": sorted((phones | {contact.wa_id}) - {""})})
        audit_record(action=AuditLog.Action.CONTACT_ERASURE_REQUESTED,
                     organization=contact.organization, actor=user, request=request,
                     target=f"contact:{contact.pk}", metadata={"request": erasure.pk})
        transaction.on_commit(lambda: jobs.enqueue_quietly("erase_data", erasure.pk))
    return erasure


def data_deletion_request(signed: SignedRequest) -> ErasureRequest:
    """Meta's data-deletion callback for one app-scoped Facebook user (already verified)."""
    digest = hashlib.sha256(signed.user_id.encode()).hexdigest()
    with transaction.atomic():
        erasure = ErasureRequest.objects.create(
            kind=ErasureRequest.Kind.FACEBOOK_USER, subject_sha256=digest,
            subject={"facebook_user_id": signed.user_id})
        audit_record(action=AuditLog.Action.DATA_DELETION_REQUESTED, actor_label="meta",
                     target=f"erasure:{erasure.pk}",
                     metadata={"confirmation_code": erasure.confirmation_code})
        transaction.on_commit(lambda: jobs.enqueue_quietly("erase_data", erasure.pk))
    return erasure


def _claim(request_id: int) -> bool:
    now = timezone.now()
    lease = timedelta(seconds=settings.WHATSAPP_ERASURE_LEASE_SECONDS)
    return bool(ErasureRequest.objects.filter(pk=request_id).filter(
        Q(state=S.PENDING) | Q(state=S.RUNNING, locked_until__lte=now) | Q(
            state=S.RUNNING, locked_until__isnull=True)).update(
        state=S.RUNNING, locked_until=now + lease, attempts=F("attempts") + 1))


def erasure_run(request_id: int) -> str:
    """Runs one request if it is free to run (pending, or its worker's lease ran out)."""
    if not _claim(request_id):
        state = ErasureRequest.objects.filter(pk=request_id).values_list("state", flat=True)
        return state.first() or "missing"
    try:
        with transaction.atomic():
            erasure = ErasureRequest.objects.select_for_update().get(pk=request_id)
            if erasure.kind == ErasureRequest.Kind.CONTACT:
                result = _contact_erase(erasure)
                action = AuditLog.Action.CONTACT_ERASED
                target = f"contact:{erasure.contact_id}"
            else:
                result = _facebook_user_erase(erasure)
                action = AuditLog.Action.DATA_DELETION_COMPLETED
                target = f"erasure:{erasure.pk}"
            erasure.state, erasure.result, erasure.subject = S.DONE, result, {}
            erasure.finished_at, erasure.locked_until, erasure.last_error = (
                timezone.now(), None, "")
            erasure.save()
            audit_record(action=action, **_audit_who(erasure),
                         target=target, metadata={"request": erasure.pk, **result})
    except Exception as exc:
        # The row stays `running`: the sweep retries it once the lease ran out.
        ErasureRequest.objects.filter(pk=request_id).update(last_error=repr(exc)[:2000])
        raise
    return S.DONE


def _audit_who(erasure: ErasureRequest) -> dict:
    return {"organization": erasure.organization, "actor": erasure.requested_by,
            "actor_label": "" if erasure.requested_by else "system"}


def erasures_sweep(*, now=None) -> int:
    """Re-enqueues requests never taken or abandoned by a dead worker (beat)."""
    ids = list(ErasureRequest.objects.due(now=now).values_list("pk", flat=True)[:100])
    for pk in ids:
        jobs.enqueue_quietly("erase_data", pk)
    return len(ids)


# --- What is removed ------------------------------------------------------------------------
def _phone_variants(phones: list[str]) -> set[str]:
    """A Brazilian mobile may reach us with or without its 9th digit (core.phones)."""
    found = set(phones)
    for phone in phones:
        if phone.startswith("55") and len(phone) == 13 and phone[4] == "9":
            found.add(phone[:4] + phone[5:])
    return found


def _bodies_mentioning(needles: set[str], organization_id: int | None):
    """Deliveries whose raw body contains one of `needles` (bytes search in the database)."""
    needles = sorted(n for n in needles if len(n) >= 6)
    if not needles:
        return WebhookLog.objects.none()
    test = "position(%s in raw_body) > 0" if connection.vendor == "postgresql" \
        else "instr(raw_body, %s) > 0"
    logs = WebhookLog.objects.filter(raw_body__isnull=False)
    if organization_id is not None:
        logs = logs.filter(Q(organization_id=organization_id) | Q(organization__isnull=True))
    return logs.extra(where=["(" + " OR ".join([test] * len(needles)) + ")"],
                      params=[n.encode() for n in needles])


def _bodies_purge(needles: set[str], organization_id: int | None) -> int:
    ids = list(_bodies_mentioning(needles, organization_id).values_list("pk", flat=True))
    return WebhookLog.objects.filter(pk__in=ids).update(raw_body=None,
                                                       body_purged_at=timezone.now())


def _media_files_delete(messages) -> int:
    """Deletes the stored media files of `messages` from the media storage; how many."""
    names = list(MessageMedia.objects.filter(message__in=messages).exclude(file="")
                 .values_list("file", flat=True))
    storage = media_storage()
    for name in names:
        storage.delete(name)
    return len(names)


def _contact_erase(erasure: ErasureRequest) -> dict:
    org, cid = erasure.organization_id, erasure.contact_id
    user_ids = set(erasure.subject.get("user_ids") or [])
    phones = _phone_variants(list(erasure.subject.get("phones") or []))
    sends = OutboundMessage.objects.filter(organization_id=org).filter(
        Q(contact_id=cid) | Q(to__in=phones))
    wamids = set(Message.objects.filter(organization_id=org, contact_id=cid)
                 .values_list("wamid", flat=True))
    wamids |= set(sends.exclude(wamid=None).values_list("wamid", flat=True))
    send_ids = list(sends.values_list("pk", flat=True))
    result = {"contacts": 0, "identities": 0, "messages": 0, "statuses": 0,
              "outbound_messages_redacted": 0, "outbound_events": 0, "webhook_bodies": 0,
              "media_files": 0}
    result["statuses"] = MessageStatus.objects.filter(organization_id=org).filter(
        Q(wamid__in=wamids) | Q(recipient_id__in=phones)
        | Q(recipient_user_id__in=user_ids)).delete()[0]
    messages = Message.objects.filter(organization_id=org).filter(
        Q(contact_id=cid) | Q(wamid__in=wamids))
    result["media_files"] = _media_files_delete(messages)
    result["messages"] = messages.delete()[0]
    result["outbound_events"] = OutboundEvent.objects.filter(message_id__in=send_ids).delete()[0]
    OutboundMessage.objects.filter(pk__in=send_ids, status__in=[OUT.QUEUED, OUT.SENDING]).update(
        status=OUT.CANCELLED)
    result["outbound_messages_redacted"] = OutboundMessage.objects.filter(pk__in=send_ids).update(
        contact=None, to="", text="", parameters={}, payload=None, response=None, errors=[],
        status_reason="", idempotency_key="", request_hash="")
    result["webhook_bodies"] = _bodies_purge(user_ids | phones, org)
    result["identities"] = ContactIdentity.objects.filter(organization_id=org).filter(
        Q(contact_id=cid) | Q(value__in=user_ids | phones)).delete()[0]
    result["contacts"] = Contact.objects.filter(organization_id=org, pk=cid).delete()[0]
    return result


def _facebook_user_erase(erasure: ErasureRequest) -> dict:
    """The product keeps no record keyed by an app-scoped Facebook user id (Embedded Signup's
    code is exchanged for the business's token; `debug_token`'s user is never stored). What
    could still mention one is a raw webhook body: those are removed."""
    user_id = str(erasure.subject.get("facebook_user_id") or "")
    return {"records_keyed_by_user": 0,
            "webhook_bodies": _bodies_purge({user_id} if user_id else set(), None)}
