"""The send task's body: claim a due send, check the rules again, pace, call Graph, record."""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _

from whatsapp.conversations.contacts import ContactBook, sighting
from whatsapp.conversations.messages import apply_stored_statuses
from whatsapp.core.backoff import backoff
from whatsapp.core.graph import TRANSIENT_CODES, GraphClient, GraphError
from whatsapp.core.payloads import Party
from whatsapp.models import (
    Message,
    OutboundMessage,
    PhoneNumber,
    SendMode,
)

from . import pacing
from .queue import event_add, outbound_announce, outbound_enqueue
from .rules import READ, SendRefused, mode_for, rule_broken, template_refused

logger = logging.getLogger(__name__)


LEASE = timedelta(minutes=5)
# A pacing wait longer than this (seconds) re-reads the mode and the rules before the call.
RECHECK_AFTER = 0.05


S = OutboundMessage.Status


@dataclass
class Outcome:
    status: str
    retry_in: float | None = None


def outbound_claim(message_id) -> OutboundMessage | None:
    """Takes a due queued row (or one whose worker died) with a conditional update."""
    now = timezone.now()
    claimed = OutboundMessage.objects.filter(pk=message_id).filter(
        Q(status=S.QUEUED, next_attempt_at__isnull=True)
        | Q(status=S.QUEUED, next_attempt_at__lte=now)
        | Q(status=S.SENDING, locked_until__lte=now)
    ).update(status=S.SENDING, locked_until=now + LEASE, attempts=F("attempts") + 1)
    if not claimed:
        return None
    return OutboundMessage.objects.select_related("config__connection", "contact",
                                                  "template", "organization").get(pk=message_id)


def outbound_send(message_id) -> Outcome:
    """Sends one queued message, once. Safe to run twice (the claim lets one run through)."""
    message = outbound_claim(message_id)
    if message is None:
        return _not_claimed(message_id)
    stop = _gate(message)
    if stop:
        return stop
    asked = time.monotonic()
    granted, wait = pacing.slot_wait(message.config.phone_number_id,
                                     pacing.limit_for(message.config), recipient=message.to,
                                     max_wait=settings.WHATSAPP_PACING_MAX_WAIT_SECONDS)
    if granted is None:
        # The number (or this recipient's pair window) is busy: back to the queue without
        # using up an attempt; the worker goes on with other sends meanwhile.
        _release(message, status=S.QUEUED, attempts=F("attempts") - 1,
                 next_attempt_at=timezone.now() + timedelta(seconds=wait))
        return Outcome("paced", retry_in=wait)
    if time.monotonic() - asked > RECHECK_AFTER:
        # Right before the Graph call: the kill switch or a rule may have changed while we
        # waited (granted at once, the checks above are a few milliseconds old: not again).
        if message.contact is not None:
            message.contact.refresh_from_db()
        stop = _gate(message, reread=True)
        if stop:
            return stop
    return _call_graph(message, granted)


def _not_claimed(message_id) -> Outcome:
    """Finished or held by another worker: skip. A retry that fired before its time (clock
    skew between hosts) waits again instead of leaving the row to the sweeper."""
    due = (OutboundMessage.objects.filter(pk=message_id, status=S.QUEUED,
                                          next_attempt_at__gt=timezone.now())
           .values_list("next_attempt_at", flat=True).first())
    if due is None:
        return Outcome("skipped")
    return Outcome("not_due", retry_in=(due - timezone.now()).total_seconds())


def _gate(message: OutboundMessage, *, reread: bool = False, mode: str = "",
          policy=READ) -> Outcome | None:
    """Mode, kill switch and rules, read fresh; finishes the row when it must not be sent.

    The template was loaded with the claimed row: read again only when `reread` (a later
    check). A batch (batch.py) passes the mode and policy it read once for all its sends."""
    mode = mode or mode_for(message.organization, policy)
    if mode == SendMode.DISABLED:
        _finish(message, S.CANCELLED, "cancelled",
                reason=_("Sending was turned off before this message went out."))
        return Outcome(S.CANCELLED)
    refused = rule_broken(organization=message.organization,
                          to=message.to or message.recipient_user_id,
                          contact=message.contact, kind=message.kind,
                          automated=message.automated, policy=policy
                          ) or _template_stale(message, reread)
    if refused:
        _finish(message, S.BLOCKED, "blocked", reason=refused.message, code=refused.code)
        return Outcome(S.BLOCKED)
    if mode == SendMode.DRY_RUN:
        _finish(message, S.DRY_RUN, "dry_run", payload=message.payload)
        return Outcome(S.DRY_RUN)
    return None


def _template_stale(message: OutboundMessage, reread: bool) -> SendRefused | None:
    template = message.template
    if template is not None:
        if reread:
            template.refresh_from_db(fields=["status", "category",
                                             "category_confirmation_required"])
        if not template.is_sendable:
            return SendRefused("invalid_template",
                               _("Template “%(name)s” is no longer approved (status: "
                                 "%(status)s).") % {"name": template.name,
                                                    "status": template.status})
        # Meta may have moved it to MARKETING while the automated send waited.
        return template_refused(template, automated=message.automated)
    return None


def _call_graph(message: OutboundMessage, granted: datetime) -> Outcome:
    token = message.config.connection.get_access_token()
    OutboundMessage.objects.filter(pk=message.pk).update(graph_called_at=granted)
    if not token:
        _finish(message, S.FAILED, "failed", reason=_("The connection has no access token."),
                failed_at=timezone.now())
        return Outcome(S.FAILED)
    try:
        body = GraphClient(token).send_message(message.config.phone_number_id, message.payload)
    except GraphError as exc:
        return _graph_failed(message, exc)
    wamid = _wamid(body)
    now = timezone.now()
    OutboundMessage.objects.filter(pk=message.pk).update(
        wamid=wamid or None, response=body, accepted_at=now, locked_until=None,
        # Statuses may have beaten us here (they carry our callback data): never move back.
        status=Case(When(status=S.SENDING, then=Value(S.ACCEPTED)), default=F("status")))
    event_add(message, "accepted", wamid=wamid, attempt=message.attempts)
    if wamid:
        _conversation_record(message, wamid, now)
    _user_id_record(message, body, now)
    return Outcome(S.ACCEPTED)


def _user_id_record(message: OutboundMessage, body: dict, now: datetime) -> None:
    """Meta answers the lead's BSUID (`contacts[].user_id`, §0): kept as one of the lead's
    identities, so a pre-BSUID phone-only lead (or a send to a parent BSUID) learns it."""
    contacts = body.get("contacts") if isinstance(body, dict) else None
    first = contacts[0] if isinstance(contacts, list) and contacts else None
    user_id = str(first.get("user_id") or "")[:160] if isinstance(first, dict) else ""
    if not user_id or message.contact is None or user_id == message.contact.user_id:
        return
    extra = [message.recipient_user_id] if message.recipient_user_id else []
    with transaction.atomic():
        book = ContactBook(message.organization_id)
        book.resolve([sighting(Party(user_id=user_id, wa_id=message.to), now, *extra)])


def _wamid(body: dict) -> str:
    messages = body.get("messages") if isinstance(body, dict) else None
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        return str(messages[0].get("id", ""))[:255]
    return ""


def _conversation_record(message: OutboundMessage, wamid: str, now: datetime) -> None:
    """The send as a conversation message, beside inbound ones and phone-app echoes.

    Its statuses may already be stored (Meta does not wait for us): under the number's lock,
    which webhook processing also takes, a status is either stored before this reads them or
    finds this row when it is applied.
    """
    with transaction.atomic():
        PhoneNumber.objects.select_for_update().filter(pk=message.config_id).first()
        Message.objects.bulk_create([Message(
            organization=message.organization, config=message.config, contact=message.contact,
            wamid=wamid, direction=Message.Direction.OUTBOUND, source=Message.Source.CLOUD_API,
            type=message.kind, timestamp=now, raw=message.payload or {},
            body=message.text or message.template_name,
        )], ignore_conflicts=True)
        apply_stored_statuses([wamid])


def retryable(exc: GraphError) -> bool:
    """Transient errors only; never a 131xxx/132xxx/133xxx policy or template refusal
    (131047 window closed, 131026 undeliverable…) that a retry would only repeat. The few codes
    of that range Graph knows as transient (graph.TRANSIENT_CODES: 131000, 131016, 131057,
    133004) are retried."""
    code = exc.code or 0
    if 131000 <= code < 134000 and code not in TRANSIENT_CODES:
        return False
    if exc.status == 0:
        # No HTTP answer. Only a failed connect proves Meta never saw the request; after a
        # read timeout a retry could deliver the message twice.
        return exc.message == "ConnectTimeout"
    return exc.is_transient


# Meta's pair rate: too many messages to the same user too fast. Not a failure: the send is
# rescheduled after the pair window, and the recipient's gate stays closed until then.
PAIR_RATE_LIMITED = 131056


def _graph_failed(message: OutboundMessage, exc: GraphError) -> Outcome:
    error = {"code": exc.code, "subcode": exc.subcode, "message": exc.message,
             "http_status": exc.status, "fbtrace_id": exc.fbtrace_id}
    if exc.code == PAIR_RATE_LIMITED and message.attempts < settings.WHATSAPP_SEND_MAX_ATTEMPTS:
        delay = settings.WHATSAPP_PAIR_RATE_SECONDS
        pacing.pair_hold(message.config.phone_number_id, message.to, delay)
        _release(message, status=S.QUEUED, next_attempt_at=timezone.now() + timedelta(
            seconds=delay), error_code=exc.code, errors=[error])
        event_add(message, "pair_rate_rescheduled", error=error, in_seconds=delay)
        return Outcome("retry", retry_in=delay)
    if exc.status != 0 and exc.code != PAIR_RATE_LIMITED:
        # Graph answered with an error: no message reached the recipient, the pair window is
        # not used (after no answer at all it may have been: the gate stays closed).
        pacing.pair_release(message.config.phone_number_id, message.to)
    transient = retryable(exc)
    if transient and message.attempts < settings.WHATSAPP_SEND_MAX_ATTEMPTS:
        delay = retry_delay(message.attempts)
        _release(message, status=S.QUEUED, next_attempt_at=timezone.now() + delay,
                 error_code=exc.code, errors=[error])
        event_add(message, "retry_scheduled", error=error, in_seconds=round(delay.total_seconds()))
        return Outcome("retry", retry_in=delay.total_seconds())
    if exc.status == 0 and not transient:
        _finish(message, S.UNKNOWN, "unknown", error=error, error_code=exc.code, errors=[error],
                reason=_("Meta did not answer; the message may or may not have been sent. "
                         "Its status webhooks will tell."))
        return Outcome(S.UNKNOWN)
    _finish(message, S.FAILED, "failed", error=error, error_code=exc.code, errors=[error],
            reason=exc.message, failed_at=timezone.now())
    return Outcome(S.FAILED)


def retry_delay(attempts: int) -> timedelta:
    return backoff(attempts, base=settings.WHATSAPP_SEND_RETRY_BASE_SECONDS,
                   cap=settings.WHATSAPP_SEND_RETRY_MAX_SECONDS)


def _release(message: OutboundMessage, **update) -> None:
    OutboundMessage.objects.filter(pk=message.pk, status=S.SENDING).update(
        locked_until=None, **update)


def _finish(message: OutboundMessage, status: str, event: str, *, reason: str = "",
            code: str = "", **extra) -> None:
    columns = {k: extra.pop(k) for k in ("error_code", "errors", "failed_at", "payload")
               if k in extra}
    OutboundMessage.objects.filter(pk=message.pk, status=S.SENDING).update(
        status=status, status_reason=reason, locked_until=None, next_attempt_at=None, **columns)
    detail = {"reason": reason} if reason else {}
    if code:
        detail["code"] = code
    if "error" in extra:
        detail["error"] = extra["error"]
    event_add(message, event, **detail)


def outbound_sweep(*, limit: int = 500) -> int:
    """Re-enqueues sends that are due (retry time reached, never enqueued, worker died).

    A send never taken after a minute is waiting for its number's drain (a backlog, or a
    lost publish): its number is announced again (a no-op while a drain is on its way), so a
    long backlog is never split into one-send tasks racing the drain."""
    now = timezone.now()
    never_enqueued = Q(status=S.QUEUED, next_attempt_at__isnull=True,
                       created_at__lte=now - timedelta(minutes=1))
    rows = list(OutboundMessage.objects.filter(
        Q(status=S.QUEUED, next_attempt_at__lte=now)
        | never_enqueued
        | Q(status=S.SENDING, locked_until__lte=now)
    ).order_by("created_at").values_list("pk", "config_id", "next_attempt_at", "status")[:limit])
    numbers = set()
    for message_id, config_id, next_attempt_at, status in rows:
        if status == S.QUEUED and next_attempt_at is None:
            numbers.add(config_id)
        else:
            outbound_enqueue(message_id)
    for config_id in numbers:
        outbound_announce(config_id)
    return len(rows)
