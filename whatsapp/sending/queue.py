"""Queueing a send: checked against the rules, stored with its Graph payload, enqueued."""

import logging

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from config.cache import redis_client
from organizations.models import ApiToken
from whatsapp.core import jobs
from whatsapp.core.phones import normalize_phone
from whatsapp.models import (
    Connection,
    Contact,
    ContactIdentity,
    OutboundEvent,
    OutboundMessage,
    PhoneNumber,
    SendMode,
)

from .rules import SendRefused, SendRequest, mode_for, rule_broken, template_refused
from .template_params import TemplateParams, params_check, template_components
from .templates import TemplateError, template_for_send, template_payload

logger = logging.getLogger(__name__)


def sending_config(organization, phone_number_id: str = "") -> PhoneNumber:
    phone_numbers = PhoneNumber.objects.select_related("connection").filter(
        organization=organization, status=PhoneNumber.Status.CONFIGURED,
        connection__status=Connection.Status.CONNECTED)
    if phone_number_id:
        config = phone_numbers.filter(phone_number_id=phone_number_id).first()
        if config is None:
            # not a number of this organization (never say whose it is).
            raise SendRefused("not_found", _("Phone number not found."))
        return config
    config = phone_numbers.order_by("created_at").first()
    if config is None:
        # the organization has no connected number to send from.
        raise SendRefused("not_connected", _("No connected WhatsApp number to send from."))
    return config


def contact_find(organization, *, contact_id: int | None, to: str) -> Contact | None:
    if contact_id is not None:
        contact = Contact.objects.filter(organization=organization, pk=contact_id).first()
        if contact is None:
            raise SendRefused("not_found", _("Contact not found."))
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
        # sending is off (environment, organization or kill switch).
        raise SendRefused("sending_disabled",
                          _("Sending WhatsApp messages is turned off for this organization."))
    to = normalize_phone(request.to)
    contact = contact_find(organization, contact_id=request.contact_id, to=to)
    to = to or (contact.wa_id if contact else "")
    # A username-only lead (no phone yet) is answered through its BSUID (Graph's `recipient`).
    recipient = "" if to or contact is None else contact.user_id
    if not (to or recipient):
        # a contact with neither a phone nor a BSUID cannot be addressed.
        raise SendRefused("no_phone", _("This contact has no phone number to send to."))
    refused = rule_broken(organization=organization, to=to or recipient, contact=contact,
                          kind=request.kind, automated=request.automated)
    if refused:
        raise refused
    message = OutboundMessage(
        organization=organization, config=config, contact=contact, to=to,
        recipient_user_id=recipient, kind=request.kind,
        text=request.text, use=request.use, automated=request.automated,
        idempotency_key=request.idempotency_key, request_hash=fingerprint,
        parameters=_params(request).stored(),
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
    # The number's drain (batch.py) sends it: one task for all the sends queued meanwhile.
    _announce_on_commit(config.pk)
    return message, True


def _replayed(existing: OutboundMessage, fingerprint: str) -> OutboundMessage:
    if existing.request_hash and existing.request_hash != fingerprint:
        # a key names one request; reusing it for another would silently drop that one.
        raise SendRefused("idempotency_key_reused",
                          _("This idempotency key was already used for a different message."))
    return existing


def _actor(user, token) -> dict:


    if isinstance(token, ApiToken):
        return {"actor": OutboundMessage.Actor.API_TOKEN,
                "queued_by_user": user, "queued_by_token": token}
    if user is not None and getattr(user, "is_authenticated", False):
        return {"actor": OutboundMessage.Actor.USER, "queued_by_user": user}
    return {"actor": OutboundMessage.Actor.SYSTEM}


def _params(request: SendRequest) -> TemplateParams:
    return TemplateParams(body=request.body_parameters, header=request.header_parameters,
                          named=request.named_parameters, header_media=request.header_media,
                          buttons=request.buttons)


def _attach_template(message: OutboundMessage, request: SendRequest, config: PhoneNumber) -> None:
    params = _params(request)
    try:
        template = template_for_send(
            organization=message.organization, config=config, name=request.template_name,
            language=request.template_language, use=request.use,
            with_parameters=bool(params.body or params.header or not params.is_plain))
        if template is not None:
            params_check(template, params)
    except TemplateError as exc:
        # Meta would refuse this template send (132xxx); say why now.
        raise SendRefused("invalid_template", exc.message) from exc
    refused = template_refused(template, automated=request.automated)
    if refused:
        raise refused
    message.template = template
    message.template_name = template.name if template else request.template_name
    message.template_language = template.language if template else request.template_language


def graph_payload(message: OutboundMessage) -> dict:
    """The `POST /{phone}/messages` body (graph.send_message adds messaging_product)."""
    payload: dict = {"recipient_type": "individual"}
    # `to` for a phone number; `recipient` (and no `to`) for a BSUID (META-PLATFORM §0).
    payload.update({"to": message.to} if message.to else {"recipient": message.recipient_user_id})
    payload["biz_opaque_callback_data"] = message.callback_data
    if message.kind == OutboundMessage.Kind.TEXT:
        payload.update(type="text", text={"body": message.text, "preview_url": False})
    elif message.kind == OutboundMessage.Kind.REQUEST_CONTACT_INFO:
        # Meta's contact-information request: the lead taps to share its phone number, which
        # comes back as a `contacts` message with origin `contact_request`.
        payload.update(type="interactive", interactive={
            "type": "request_contact_info", "body": {"text": message.text},
            "action": {"name": "request_contact_info"}})
    else:
        components = template_components(message.template,
                                         TemplateParams.from_stored(message.parameters))
        payload.update(type="template", template=template_payload(
            name=message.template_name, language=message.template_language,
            components=components))
    return payload


def event_add(message: OutboundMessage, event: str, **detail) -> None:
    OutboundEvent.objects.create(message=message, event=event, detail=detail)


def outbound_enqueue(message_id, *, countdown: float | None = None) -> None:
    """Publishes the send task; a broker outage only delays it (outbound_sweep retries)."""
    jobs.enqueue_quietly("send_outbound", str(message_id), countdown=countdown)


# A drain of the number is on its way (published, not yet started): later sends ride along.
# Expires on its own, so a lost publish only waits for this (and the sweeper) to recover.
ANNOUNCE_TTL = 60


def _announce_key(config_id) -> str:
    return f"whatsapp:sending:drain:{config_id}"


def outbound_announce(config_id, *, countdown: float | None = None) -> None:
    """Publishes a drain of the number's due sends (task `send_outbound_number`) unless one
    is already on its way. Without Redis every announce publishes (a drain that finds nothing
    due costs one query)."""
    try:
        if not redis_client().set(_announce_key(config_id), "1", nx=True,
                                  ex=int(ANNOUNCE_TTL + (countdown or 0))):
            return
    except Exception:
        pass  # publish anyway
    if not jobs.enqueue_quietly("send_outbound_number", str(config_id), countdown=countdown):
        announce_clear(config_id)  # the next send announces again; the sweeper meanwhile


def _announce_on_commit(config_id) -> None:
    """Announces the number when the transaction commits, once however many of its sends the
    transaction queues (a campaign queued in one transaction: one announce per number).

    The transaction's commit hooks are a list Django replaces when it commits or rolls back (a
    savepoint too): the numbers noted for one list never outlive it."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        outbound_announce(config_id)
        return
    hooks = connection.run_on_commit
    noted = getattr(connection, "_outbound_announces", None)
    if noted is None or noted[0] is not hooks:
        noted = connection._outbound_announces = (hooks, set())
    if config_id in noted[1]:
        return
    noted[1].add(config_id)
    transaction.on_commit(lambda: outbound_announce(config_id))


def announce_clear(config_id) -> None:
    """The drain has started: a send queued from now on must announce again."""
    try:
        redis_client().delete(_announce_key(config_id))
    except Exception:
        pass  # no Redis: nothing was recorded
