"""Sending, safely (seed 003 §5–6, Fase 1): a send request is checked, queued, paced per
number and sent by a Celery task; Meta's statuses come back to it through
`biz_opaque_callback_data`.

The rules, and where each is enforced (queue time = the API answers with a clear error; send
time = checked again right before the Graph call, because things change while a send waits):

| rule | queue | send |
|---|---|---|
| mode disabled / kill switch (flag `whatsapp-sending`) | 403 | cancelled |
| mode dry_run | queued | dry_run, Graph never called |
| recipient allowlist (global and per organization) | 403 | blocked |
| free-form text only inside the 24 h window (user's inbound; echoes don't count) | 409 | blocked |
| automated send to a conversation a person handles from the phone (echo seen) | 409 | blocked |
| template approved, language and parameter count match | 400 | blocked |
"""

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from whatsapp.core.backoff import backoff
from whatsapp.core.graph import TRANSIENT_CODES, GraphClient, GraphError
from whatsapp.core.phones import normalize_phone
from whatsapp.models.flags import flag_enabled

from . import ingestion, pacing
from .models import (
    Config,
    Connection,
    Contact,
    ContactIdentity,
    Message,
    OutboundEvent,
    OutboundMessage,
    SendMode,
    SendPolicy,
)
from .templates import TemplateError, template_for_send, template_payload

logger = logging.getLogger(__name__)

# Kill switch: this flag's kill_switch stops every send at once (queued ones included); an
# organization override with enabled=False stops one tenant.
SENDING_FLAG = "whatsapp-sending"
SERVICE_WINDOW = timedelta(hours=24)
MODE_RANK = {SendMode.DISABLED: 0, SendMode.DRY_RUN: 1, SendMode.ENABLED: 2}
CALLBACK_PREFIX = "qlk:"
LEASE = timedelta(minutes=5)
# A status never moves back: failed > read > delivered > sent > accepted.
RANK = {OutboundMessage.Status.ACCEPTED: 1, OutboundMessage.Status.SENT: 2,
        OutboundMessage.Status.DELIVERED: 3, OutboundMessage.Status.READ: 4,
        OutboundMessage.Status.FAILED: 5}
STATUS_FIELDS = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at",
                 "played": "read_at", "failed": "failed_at"}
S = OutboundMessage.Status


class SendRefused(Exception):
    """The request breaks a sending rule; answered as `{"error": message, "code": code}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class SendRequest:
    kind: str
    to: str = ""
    contact_id: int | None = None
    phone_number_id: str = ""
    text: str = ""
    template_name: str = ""
    template_language: str = ""
    use: str = ""
    body_parameters: list = field(default_factory=list)
    header_parameters: list = field(default_factory=list)
    automated: bool = False
    idempotency_key: str = ""

    def fingerprint(self) -> str:
        data = {k: v for k, v in self.__dict__.items() if k != "idempotency_key"}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


# --- Rules ----------------------------------------------------------------------------------------

def mode_for(organization) -> str:
    """The effective mode: the stricter of the environment's and the organization's."""
    global_mode = settings.WHATSAPP_SEND_MODE
    if global_mode not in MODE_RANK or not flag_enabled(SENDING_FLAG, organization):
        return SendMode.DISABLED
    policy = SendPolicy.objects.filter(organization=organization).first()
    org_mode = policy.mode if policy else SendMode.DRY_RUN
    return min(global_mode, org_mode, key=lambda m: MODE_RANK.get(m, 0))


def allowlisted(organization, to: str) -> bool:
    """Every configured allowlist (environment, organization) must contain the recipient."""
    policy = SendPolicy.objects.filter(organization=organization).first()
    for allowlist in (settings.WHATSAPP_SEND_ALLOWLIST, policy.allowlist if policy else []):
        if allowlist and to not in {normalize_phone(str(n)) for n in allowlist}:
            return False
    return True


def window_open(contact: Contact | None, now: datetime | None = None) -> bool:
    """The customer-service window: 24 h from the user's last inbound message."""
    now = now or timezone.now()
    return bool(contact and contact.last_inbound_at
                and now - contact.last_inbound_at < SERVICE_WINDOW)


def handled_by_person(contact: Contact | None) -> bool:
    """Someone answered this lead from the phone app: automation stays quiet for good."""
    return bool(contact and contact.human_takeover_at)


def rule_broken(*, organization, to: str, contact: Contact | None, kind: str,
                automated: bool) -> SendRefused | None:
    if not allowlisted(organization, to):
        # 403: this environment only sends to its test numbers.
        return SendRefused(403, "recipient_not_allowed",
                           _("This recipient is not in the sending allowlist."))
    if automated and handled_by_person(contact):
        # 409: the conversation's state (a person took over) forbids it.
        return SendRefused(409, "human_takeover",
                           _("A person is handling this conversation on the phone; automated "
                             "messages are not sent to it."))
    if kind == OutboundMessage.Kind.TEXT and not window_open(contact):
        # 409: outside the 24 h window Meta only accepts templates (131047).
        return SendRefused(409, "window_closed",
                           _("The 24-hour customer service window is closed: only an approved "
                             "template can be sent."))
    return None


# --- Queueing -------------------------------------------------------------------------------------

def sending_config(organization, phone_number_id: str = "") -> Config:
    configs = Config.objects.select_related("connection").filter(
        organization=organization, status=Config.Status.CONFIGURED,
        connection__status=Connection.Status.CONNECTED)
    if phone_number_id:
        config = configs.filter(phone_number_id=phone_number_id).first()
        if config is None:
            # 404: not a number of this organization (never say whose it is).
            raise SendRefused(404, "not_found", _("Phone number not found."))
        return config
    config = configs.order_by("created_at").first()
    if config is None:
        # 409: the organization has no connected number to send from.
        raise SendRefused(409, "not_connected", _("No connected WhatsApp number to send from."))
    return config


def contact_find(organization, *, contact_id: int | None, to: str) -> Contact | None:
    if contact_id is not None:
        contact = Contact.objects.filter(organization=organization, pk=contact_id).first()
        if contact is None:
            raise SendRefused(404, "not_found", _("Contact not found."))
        return contact
    identity = (ContactIdentity.objects.select_related("contact")
                .filter(organization=organization, kind=ContactIdentity.Kind.PHONE, value=to)
                .first())
    if identity:
        return identity.contact
    return Contact.objects.filter(organization=organization, wa_id=to).first()


def outbound_queue(*, organization, request: SendRequest, user=None, token=None
                   ) -> tuple[OutboundMessage, bool]:
    """Checks and queues one send; (message, created). The same idempotency key returns the
    message queued first, whatever happened to it since."""
    fingerprint = request.fingerprint()
    if request.idempotency_key:
        existing = OutboundMessage.objects.filter(
            organization=organization, idempotency_key=request.idempotency_key).first()
        if existing:
            return _replayed(existing, fingerprint), False
    config = sending_config(organization, request.phone_number_id)
    mode = mode_for(organization)
    if mode == SendMode.DISABLED:
        # 403: sending is off (environment, organization or kill switch).
        raise SendRefused(403, "sending_disabled",
                          _("Sending WhatsApp messages is turned off for this organization."))
    to = normalize_phone(request.to)
    contact = contact_find(organization, contact_id=request.contact_id, to=to)
    to = to or (contact.wa_id if contact else "")
    if not to:
        # 409: a username-only contact has no number we may send to yet.
        raise SendRefused(409, "no_phone", _("This contact has no phone number to send to."))
    refused = rule_broken(organization=organization, to=to, contact=contact,
                          kind=request.kind, automated=request.automated)
    if refused:
        raise refused
    message = OutboundMessage(
        organization=organization, config=config, contact=contact, to=to, kind=request.kind,
        text=request.text, use=request.use, automated=request.automated,
        idempotency_key=request.idempotency_key, request_hash=fingerprint,
        parameters={"body": request.body_parameters, "header": request.header_parameters},
        **_actor(user, token),
    )
    if request.kind == OutboundMessage.Kind.TEMPLATE:
        _attach_template(message, request, config)
    message.payload = graph_payload(message)
    try:
        with transaction.atomic():
            message.save()
            event_add(message, "queued", mode=mode)
    except IntegrityError:
        # The same key raced us: the other request's message is the one.
        existing = OutboundMessage.objects.get(organization=organization,
                                               idempotency_key=request.idempotency_key)
        return _replayed(existing, fingerprint), False
    transaction.on_commit(lambda: outbound_enqueue(message.pk))
    return message, True


def _replayed(existing: OutboundMessage, fingerprint: str) -> OutboundMessage:
    if existing.request_hash and existing.request_hash != fingerprint:
        # 422: a key names one request; reusing it for another would silently drop that one.
        raise SendRefused(422, "idempotency_key_reused",
                          _("This idempotency key was already used for a different message."))
    return existing


def _actor(user, token) -> dict:
    from organizations.models import ApiToken

    if isinstance(token, ApiToken):
        return {"actor": OutboundMessage.Actor.API_TOKEN,
                "queued_by_user": user, "queued_by_token": token}
    if user is not None and getattr(user, "is_authenticated", False):
        return {"actor": OutboundMessage.Actor.USER, "queued_by_user": user}
    return {"actor": OutboundMessage.Actor.SYSTEM}


def _attach_template(message: OutboundMessage, request: SendRequest, config: Config) -> None:
    try:
        template = template_for_send(
            organization=message.organization, config=config, name=request.template_name,
            language=request.template_language, use=request.use,
            body_parameters=request.body_parameters,
            header_parameters=request.header_parameters)
    except TemplateError as exc:
        # 400: Meta would refuse this template send (132xxx); say why now.
        raise SendRefused(400, "invalid_template", exc.message) from exc
    message.template = template
    message.template_name = template.name if template else request.template_name
    message.template_language = template.language if template else request.template_language


def graph_payload(message: OutboundMessage) -> dict:
    """The `POST /{phone}/messages` body (graph.send_message adds messaging_product)."""
    payload: dict = {"recipient_type": "individual", "to": message.to,
                     "biz_opaque_callback_data": message.callback_data}
    if message.kind == OutboundMessage.Kind.TEXT:
        payload.update(type="text", text={"body": message.text, "preview_url": False})
    else:
        params = message.parameters or {}
        payload.update(type="template", template=template_payload(
            name=message.template_name, language=message.template_language,
            body_parameters=params.get("body", []), header_parameters=params.get("header", [])))
    return payload


def event_add(message: OutboundMessage, event: str, **detail) -> None:
    OutboundEvent.objects.create(message=message, event=event, detail=detail)


def outbound_enqueue(message_id, *, countdown: float | None = None) -> None:
    """Publishes the send task; a broker outage only delays it (outbound_sweep retries)."""
    from .tasks import send_outbound

    try:
        send_outbound.apply_async(args=[str(message_id)], countdown=countdown)
    except Exception:
        logger.warning("Could not enqueue outbound message %s; the sweeper will", message_id)


# --- Sending (the Celery task's body) -------------------------------------------------------------

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
    granted, wait = pacing.slot_wait(message.config.phone_number_id,
                                     pacing.limit_for(message.config),
                                     max_wait=settings.WHATSAPP_PACING_MAX_WAIT_SECONDS)
    if granted is None:
        # The number is busy: back to the queue without using up an attempt.
        _release(message, status=S.QUEUED, attempts=F("attempts") - 1,
                 next_attempt_at=timezone.now() + timedelta(seconds=wait))
        return Outcome("paced", retry_in=wait)
    # Right before the Graph call: the kill switch or a rule may have changed while we waited.
    if message.contact is not None:
        message.contact.refresh_from_db()
    stop = _gate(message)
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


def _gate(message: OutboundMessage) -> Outcome | None:
    """Mode, kill switch and rules, read fresh; finishes the row when it must not be sent."""
    mode = mode_for(message.organization)
    if mode == SendMode.DISABLED:
        _finish(message, S.CANCELLED, "cancelled",
                reason=_("Sending was turned off before this message went out."))
        return Outcome(S.CANCELLED)
    refused = rule_broken(organization=message.organization, to=message.to,
                          contact=message.contact, kind=message.kind,
                          automated=message.automated) or _template_stale(message)
    if refused:
        _finish(message, S.BLOCKED, "blocked", reason=refused.message, code=refused.code)
        return Outcome(S.BLOCKED)
    if mode == SendMode.DRY_RUN:
        _finish(message, S.DRY_RUN, "dry_run", payload=message.payload)
        return Outcome(S.DRY_RUN)
    return None


def _template_stale(message: OutboundMessage) -> SendRefused | None:
    template = message.template
    if template is not None:
        template.refresh_from_db(fields=["status"])
        if not template.is_sendable:
            return SendRefused(400, "invalid_template",
                               _("Template “%(name)s” is no longer approved (status: "
                                 "%(status)s).") % {"name": template.name,
                                                    "status": template.status})
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
        wamid=wamid or None, response=body, accepted_at=now, locked_until=None)
    # Statuses may have beaten us here (they carry our callback data): never move back.
    OutboundMessage.objects.filter(pk=message.pk, status=S.SENDING).update(status=S.ACCEPTED)
    event_add(message, "accepted", wamid=wamid, attempt=message.attempts)
    if wamid:
        _conversation_record(message, wamid, now)
    return Outcome(S.ACCEPTED)


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
        Config.objects.select_for_update().filter(pk=message.config_id).first()
        Message.objects.bulk_create([Message(
            organization=message.organization, config=message.config, contact=message.contact,
            wamid=wamid, direction=Message.Direction.OUTBOUND, source=Message.Source.CLOUD_API,
            type=message.kind, timestamp=now, raw=message.payload or {},
            body=message.text or message.template_name,
        )], ignore_conflicts=True)
        ingestion.apply_stored_statuses([wamid])


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


def _graph_failed(message: OutboundMessage, exc: GraphError) -> Outcome:
    error = {"code": exc.code, "subcode": exc.subcode, "message": exc.message,
             "http_status": exc.status, "fbtrace_id": exc.fbtrace_id}
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
    """Re-enqueues sends that are due (retry time reached, never enqueued, worker died)."""
    now = timezone.now()
    never_enqueued = Q(status=S.QUEUED, next_attempt_at__isnull=True,
                       created_at__lte=now - timedelta(minutes=1))
    ids = list(OutboundMessage.objects.filter(
        Q(status=S.QUEUED, next_attempt_at__lte=now)
        | never_enqueued
        | Q(status=S.SENDING, locked_until__lte=now)
    ).order_by("created_at").values_list("pk", flat=True)[:limit])
    for message_id in ids:
        outbound_enqueue(message_id)
    return len(ids)


# --- Statuses coming back (called from whatsapp/ingestion.py) -------------------------------------

def outbound_statuses_apply(organization_id, statuses: list) -> None:
    """Maps status webhooks to their sends by our callback data, else by wamid.

    The sends of a whole delivery are fetched (and locked, in pk order) with at most two
    queries, not one or two per status: statuses are most of the webhook traffic.
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
    for item, callback_id in zip(statuses, callback_ids, strict=True):
        message = by_pk.get(callback_id) if callback_id else None
        if message is None and item.wamid:
            message = by_wamid.get(item.wamid)
        if message is not None:
            _status_apply(message, item)
            if message.wamid:  # a send may learn its wamid from its first status
                by_wamid.setdefault(message.wamid, message)


def _callback_id(item) -> uuid.UUID | None:
    data = item.biz_opaque_callback_data or ""
    if not data.startswith(CALLBACK_PREFIX):
        return None
    try:
        return uuid.UUID(data[len(CALLBACK_PREFIX):])
    except ValueError:
        return None


def _status_apply(message: OutboundMessage, item) -> None:
    status = "failed" if item.status == "error" else item.status
    column = STATUS_FIELDS.get(status)
    if column is None:
        return
    when = datetime.fromtimestamp(item.timestamp, tz=UTC) if item.timestamp else timezone.now()
    first_time = getattr(message, column) is None
    if first_time:
        setattr(message, column, when)
    new = S.READ if status == "played" else status
    if RANK.get(new, 0) > RANK.get(message.status, 0):
        message.status = new
    if not message.wamid and item.wamid:
        message.wamid = item.wamid[:255]
    if status == "failed":
        message.errors = item.errors
        codes = [e.get("code") for e in item.errors if isinstance(e.get("code"), int)]
        message.error_code = codes[0] if codes else message.error_code
        message.status_reason = "; ".join(str(e.get("title") or e.get("message") or "")
                                          for e in item.errors)[:2000]
    message.save(update_fields=["status", "wamid", "errors", "error_code", "status_reason",
                                "sent_at", "delivered_at", "read_at", "failed_at", "updated_at"])
    if first_time:
        event_add(message, f"status_{status}", wamid=item.wamid, at=when.isoformat(),
                  **({"errors": item.errors} if item.errors else {}))
