"""Webhook bodies as Meta shapes them (META-PLATFORM.md §4), built in code.

Every kind is a small function from a `Target` (who the event is about) to one `Change`; the
envelope and the wire bytes are made in one place, `wire()`. Shapes follow the fixtures in
`shared/meta-payloads/` key for key (tests compare them); the texts are Brazilian samples.
"""

import hashlib
from collections.abc import Callable
from typing import Any

from . import ids
from .envelope import Change, Target, _contact, _metadata, envelope, user_id_for, wire
from .payloads_coexistence import (
    contacts_add,
    contacts_remove,
    history_declined,
    history_phase0,
    history_phase1_chunk1,
    history_phase1_chunk2,
    history_phase2,
)

__all__ = ["DISCONNECTING", "KINDS", "Change", "Target", "build", "envelope", "wire"]


# --- account_update ---------------------------------------------------------------------------
def _waba_info(t: Target, **extra: str) -> dict[str, str]:
    return {"waba_id": t.waba_id, "owner_business_id": t.owner_business_id, **extra}


def partner_added(t: Target) -> Change:
    value: dict[str, Any] = {"event": "PARTNER_ADDED", "waba_info": _waba_info(t)}
    if t.tracking_code:
        # Only with the echo switch on: real Meta sends no partner value back (§1.6).
        value["sessionInfo"] = {"trackingCode": t.tracking_code}
    return Change(t.partner_business_id, "account_update", value, t.now)


def partner_app_installed(t: Target) -> Change:
    value = {"event": "PARTNER_APP_INSTALLED",
             "waba_info": _waba_info(t, partner_app_id=t.partner_app_id)}
    return Change(t.partner_business_id, "account_update", value, t.now)


def partner_app_uninstalled(t: Target) -> Change:
    value = {"event": "PARTNER_APP_UNINSTALLED",
             "waba_info": _waba_info(t, partner_app_id=t.partner_app_id)}
    return Change(t.partner_business_id, "account_update", value, t.now)


def partner_removed(t: Target) -> Change:
    value = {"event": "PARTNER_REMOVED", "waba_info": _waba_info(t)}
    return Change(t.partner_business_id, "account_update", value, t.now)


def partner_removed_coexistence(t: Target) -> Change:
    value = {"event": "PARTNER_REMOVED", "waba_info": _waba_info(t),
             "disconnection_info": {"reason": "ACCOUNT_DISCONNECTED", "initiated_by": "USER"}}
    return Change(t.partner_business_id, "account_update", value, t.now)


def partner_removed_guide_shape(t: Target) -> Change:
    """The coexistence guide's other shape: entry.id is the WABA, no waba_info (§4.1)."""
    value = {"phone_number": t.display_phone_number, "event": "PARTNER_REMOVED",
             "disconnection_info": {"reason": "ACCOUNT_DISCONNECTED", "initiated_by": "USER"}}
    return Change(t.waba_id, "account_update", value, t.now)


def account_offboarded(t: Target) -> Change:
    return Change(t.waba_id, "account_update", {"event": "ACCOUNT_OFFBOARDED"}, t.now)


def account_reconnected(t: Target) -> Change:
    return Change(t.waba_id, "account_update", {"event": "ACCOUNT_RECONNECTED"}, t.now)


def account_violation(t: Target) -> Change:
    value = {"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "SCAM"}}
    return Change(t.waba_id, "account_update", value, t.now)


def account_restriction(t: Target) -> Change:
    value = {"event": "ACCOUNT_RESTRICTION", "restriction_info": [
        {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": t.now + 86400}]}
    return Change(t.waba_id, "account_update", value, t.now)


# --- messages (inbound) -------------------------------------------------------------------------
def _inbound(t: Target, name: str, number: str, message: dict[str, Any]) -> Change:
    value = {
        "messaging_product": "whatsapp",
        "metadata": _metadata(t),
        "contacts": [_contact(name, number)],
        "messages": [{"from": number, "from_user_id": user_id_for(number), "id": ids.wamid(),
                      "timestamp": str(t.now), **message}],
    }
    return Change(t.waba_id, "messages", value)


def text(t: Target) -> Change:
    body = "Olá! Vi o anúncio do apartamento de 2 quartos na Vila Mariana. Ainda está disponível?"
    return _inbound(t, "Mariana Souza", "5511987654321", {"type": "text", "text": {"body": body}})


def image(t: Target) -> Change:
    media = {"caption": "Foto da fachada", "mime_type": "image/jpeg",
             "sha256": hashlib.sha256(b"fachada").hexdigest(), "id": ids.numeric_id("505")}
    return _inbound(t, "Mariana Souza", "5511987654321", {"type": "image", "image": media})


# The username user of messages_text_inbound_username_no_phone.json; its number is only
# revealed when it answers a contact-information request.
USERNAME_NUMBER = "5511955550123"


def text_username(t: Target) -> Change:
    """A user who adopted a username: no `wa_id`, no `from`, only the BSUID (§4.8)."""
    user_id = user_id_for(USERNAME_NUMBER)
    value = {"messaging_product": "whatsapp", "metadata": _metadata(t),
             "contacts": [{"profile": {"name": "Carla M.", "username": "carla.imoveis"},
                           "user_id": user_id}],
             "messages": [{"from_user_id": user_id, "id": ids.wamid(), "timestamp": str(t.now),
                           "type": "text", "text": {"body": "Qual o valor do condomínio?"}}]}
    return Change(t.waba_id, "messages", value)


def contact_shared(t: Target) -> Change:
    """The user tapped "share contact info" on our request: a `contacts` message with
    origin `contact_request` and its own number (username user unless the send had a phone)."""
    user_id = t.recipient_user_id or user_id_for(t.recipient)
    number = (t.recipient if not t.recipient_user_id
              else NUMBERS_BY_USER_ID.get(user_id, USERNAME_NUMBER))
    value = {"messaging_product": "whatsapp", "metadata": _metadata(t),
             "contacts": [{"profile": {"name": "Carla M.", "username": "carla.imoveis"},
                           "user_id": user_id}],
             "messages": [{"from_user_id": user_id, "id": ids.wamid(), "timestamp": str(t.now),
                           "type": "contacts", "contacts": [{
                               "name": {"formatted_name": "Carla M.", "first_name": "Carla"},
                               "origin": "contact_request",
                               "phones": [{"phone": f"+{number}", "wa_id": number,
                                           "type": "CELL"}]}]}]}
    return Change(t.waba_id, "messages", value)


NUMBERS_BY_USER_ID = {user_id_for(n): n for n in (USERNAME_NUMBER, "5511987654321")}


def history_media(t: Target) -> Change:
    """The follow-up that carries the media of a `media_placeholder` (user-sent: messages[])."""
    change = image(t)
    change.value["contacts"] = [{k: v for k, v in c.items() if k != "profile"}
                                for c in change.value["contacts"]]
    change.value["messages"][0]["timestamp"] = str(t.now - 43000)
    return Change(t.waba_id, "history", change.value)


def ctwa_referral(t: Target) -> Change:
    change = _inbound(t, "João Pereira", "5511976543210", {
        "type": "text", "text": {"body": "Quero mais informações sobre este imóvel."}})
    change.value["messages"][0] = {"referral": {
        "source_url": "https://fb.me/sandbox", "source_id": ids.numeric_id("12", 18),
        "source_type": "ad", "body": "Apartamentos na planta em Pinheiros",
        "headline": "Fale com um corretor", "media_type": "image",
        "image_url": "https://example.com/anuncio.jpg",
        "ctwa_clid": "ARAkSandbox" + ids.request_id(),
        "welcome_message": {"text": "Olá! Como podemos ajudar?"}}, **change.value["messages"][0]}
    return change


def unsupported(t: Target) -> Change:
    """131060 on a coexistence number: the message is only on the phone (§4.2)."""
    error = "This message is currently unavailable."
    return _inbound(t, "João Pereira", "5511976543210", {
        "errors": [{"code": 131060, "title": error, "message": error,
                    "error_data": {"details": error}}],
        "type": "unsupported", "unsupported": {"type": "media_placeholder"}})


# --- messages (statuses) ------------------------------------------------------------------------

PRICING = {"billable": False, "pricing_model": "PMP", "type": "free_customer_service",
           "category": "service"}


def _status(t: Target, status: str, *, pricing: bool) -> Change:
    if t.recipient_user_id:
        return _status_username(t, status, pricing=pricing)
    item: dict[str, Any] = {"id": t.wamid or ids.wamid(), "status": status,
                            "timestamp": str(t.now), "recipient_id": t.recipient,
                            "recipient_user_id": user_id_for(t.recipient)}
    if t.biz_opaque_callback_data:
        item["biz_opaque_callback_data"] = t.biz_opaque_callback_data
    if pricing:
        item["pricing"] = dict(PRICING)
    value = {"messaging_product": "whatsapp", "metadata": _metadata(t),
             "contacts": [_contact("Mariana Souza", t.recipient)], "statuses": [item]}
    return Change(t.waba_id, "messages", value)


def _status_username(t: Target, status: str, *, pricing: bool) -> Change:
    """A send to a BSUID: no recipient_id, a contacts block with the user_id only (§4.3)."""
    item: dict[str, Any] = {"id": t.wamid or ids.wamid(), "status": status,
                            "timestamp": str(t.now), "recipient_user_id": t.recipient_user_id}
    if t.biz_opaque_callback_data:
        item["biz_opaque_callback_data"] = t.biz_opaque_callback_data
    if pricing:
        item["pricing"] = dict(PRICING)
    value = {"messaging_product": "whatsapp", "metadata": _metadata(t),
             "contacts": [{"user_id": t.recipient_user_id}], "statuses": [item]}
    return Change(t.waba_id, "messages", value)


def status_sent(t: Target) -> Change:
    return _status(t, "sent", pricing=True)


def status_delivered(t: Target) -> Change:
    return _status(t, "delivered", pricing=True)


def status_read(t: Target) -> Change:
    return _status(t, "read", pricing=False)


def status_failed(t: Target) -> Change:
    """`failed` has no contacts block and no recipient_user_id when sent to a number (§4.3)."""
    title = "This message was not delivered to maintain healthy ecosystem engagement."
    item = {"id": t.wamid or ids.wamid(), "status": "failed", "timestamp": str(t.now),
            "recipient_id": t.recipient,
            "errors": [{"code": 131049, "title": title, "message": title,
                        "error_data": {"details": "In order to maintain a healthy ecosystem "
                                                  "engagement, the message failed to be "
                                                  "delivered."},
                        "href": "/documentation/business-messaging/whatsapp/support/error-codes"}]}
    value = {"messaging_product": "whatsapp", "metadata": _metadata(t), "statuses": [item]}
    return Change(t.waba_id, "messages", value)


# --- smb_message_echoes (sent from the phone app) ---------------------------------------------
def _echo(t: Target, message: dict[str, Any]) -> Change:
    to = "5511987654321"
    value = {"messaging_product": "whatsapp", "metadata": _metadata(t),
             "contacts": [{"wa_id": to, "user_id": user_id_for(to)}],
             "message_echoes": [{"from": t.display_phone_number, "to": to,
                                 "to_user_id": user_id_for(to), "id": ids.wamid(),
                                 "timestamp": str(t.now), **message}]}
    return Change(t.waba_id, "smb_message_echoes", value)


def echo_text(t: Target) -> Change:
    body = "Oi Mariana, a visita está confirmada para amanhã às 15h."
    return _echo(t, {"type": "text", "text": {"body": body}})


def echo_revoke(t: Target) -> Change:
    return _echo(t, {"type": "revoke", "revoke": {"original_message_id": ids.wamid()}})


# --- history (coexistence) ----------------------------------------------------------------------


# --- smb_app_state_sync (contacts) --------------------------------------------------------------


# --- templates, quality, BSUID --------------------------------------------------------------------
def template_approved(t: Target) -> Change:
    value = {"event": "APPROVED", "message_template_id": 606000000000001,
             "message_template_name": "confirmacao_visita", "message_template_language": "pt_BR",
             "reason": "NONE", "message_template_category": "UTILITY"}
    return Change(t.waba_id, "message_template_status_update", value, t.now)


def template_rejected(t: Target) -> Change:
    value = {"event": "REJECTED", "message_template_id": 606000000000002,
             "message_template_name": "lancamento_promocional",
             "message_template_language": "pt_BR", "reason": "INVALID_FORMAT",
             "message_template_category": "MARKETING",
             "rejection_info": {"reason": "Your template has parameters placed next to each other.",
                                "recommendation": "Separate parameters with descriptive text."}}
    return Change(t.waba_id, "message_template_status_update", value, t.now)


def template_category_update(t: Target) -> Change:
    """Meta moved an approved utility template to marketing (completed change, §0)."""
    value = {"message_template_id": 606000000000001,
             "message_template_name": "confirmacao_visita", "message_template_language": "pt_BR",
             "previous_category": "UTILITY", "new_category": "MARKETING"}
    return Change(t.waba_id, "template_category_update", value, t.now)


def template_category_upcoming(t: Target) -> Change:
    """Meta announces a re-categorisation taking effect in a week (impending change, §0)."""
    value = {"message_template_id": 606000000000001,
             "message_template_name": "confirmacao_visita", "message_template_language": "pt_BR",
             "correct_category": "MARKETING", "new_category": "MARKETING",
             "category_update_timestamp": t.now + 7 * 86400}
    return Change(t.waba_id, "template_category_update", value, t.now)


def template_quality_update(t: Target) -> Change:
    value = {"previous_quality_score": "GREEN", "new_quality_score": "YELLOW",
             "message_template_id": 606000000000001,
             "message_template_name": "confirmacao_visita", "message_template_language": "pt_BR"}
    return Change(t.waba_id, "message_template_quality_update", value, t.now)


def quality_update(t: Target) -> Change:
    value = {"display_phone_number": t.display_phone_number, "event": "THROUGHPUT_UPGRADE",
             "max_daily_conversations_per_business": "TIER_UNLIMITED"}
    return Change(t.waba_id, "phone_number_quality_update", value, t.now)


def _system(t: Target, system: dict[str, Any], **item: str) -> Change:
    """A BSUID change as Meta reports it since Aug 2026: a `system` message on `messages`, no
    `contacts` (`user_id_update` is not a webhook field, META-PLATFORM.md §0)."""
    message = {**item, "id": ids.wamid(), "timestamp": str(t.now), "type": "system",
               "system": system}
    value = {"messaging_product": "whatsapp", "metadata": _metadata(t), "messages": [message]}
    return Change(t.waba_id, "messages", value)


def user_changed_number(t: Target) -> Change:
    """Mariana moved to a new number: `from` is the old one, `system.wa_id` the new one, and
    her BSUID is regenerated (the sandbox's BSUIDs are one per number)."""
    old, new = "5511987654321", "5511912345678"
    return _system(t, {"body": f"User Mariana Souza changed from {old} to {new}", "wa_id": new,
                       "user_id": user_id_for(new), "previous_user_id": user_id_for(old),
                       "type": "user_changed_number"}, **{"from": old})


def user_changed_user_id(t: Target) -> Change:
    """A username user's BSUID changed and no phone can be shared: only the two ids."""
    previous, current = user_id_for("5511987654321"), ids.bsuid()
    return _system(t, {"body": f"User Mariana Souza changed from {previous} to {current}",
                       "user_id": current, "previous_user_id": previous,
                       "type": "user_changed_user_id"})


KINDS: dict[str, Callable[[Target], Change]] = {
    "partner_added": partner_added,
    "partner_app_installed": partner_app_installed,
    "partner_app_uninstalled": partner_app_uninstalled,
    "partner_removed": partner_removed,
    "partner_removed_coexistence": partner_removed_coexistence,
    "partner_removed_guide_shape": partner_removed_guide_shape,
    "account_offboarded": account_offboarded,
    "account_reconnected": account_reconnected,
    "account_violation": account_violation,
    "account_restriction": account_restriction,
    "text": text,
    "image": image,
    "text_username": text_username,
    "contact_shared": contact_shared,
    "ctwa_referral": ctwa_referral,
    "unsupported": unsupported,
    "status_sent": status_sent,
    "status_delivered": status_delivered,
    "status_read": status_read,
    "status_failed": status_failed,
    "echo_text": echo_text,
    "echo_revoke": echo_revoke,
    "history_phase0": history_phase0,
    "history_phase1_chunk1": history_phase1_chunk1,
    "history_phase1_chunk2": history_phase1_chunk2,
    "history_phase2": history_phase2,
    "history_media": history_media,
    "history_declined": history_declined,
    "contacts_add": contacts_add,
    "contacts_remove": contacts_remove,
    "template_approved": template_approved,
    "template_rejected": template_rejected,
    "template_category_update": template_category_update,
    "template_category_upcoming": template_category_upcoming,
    "template_quality_update": template_quality_update,
    "quality_update": quality_update,
    "user_changed_number": user_changed_number,
    "user_changed_user_id": user_changed_user_id,
}

# Kinds that take the partner off the WABA: the sandbox revokes tokens and subscriptions too.
DISCONNECTING = {"partner_app_uninstalled", "partner_removed", "partner_removed_coexistence",
                 "partner_removed_guide_shape", "account_offboarded"}


def build(kind: str, target: Target) -> Change:
    try:
        builder = KINDS[kind]
    except KeyError:
        raise ValueError(f"Unknown event kind {kind!r}; valid kinds: {', '.join(KINDS)}") from None
    return builder(target)
