"""Meta's side of the workflows: finishing a signup, syncing a coexistence number, sending."""

import hashlib
import json
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import delivery, ids
from .delivery import Step
from .graph_media import MEDIA_KINDS, media_register
from .models import (
    Attempt,
    AuthCode,
    Business,
    Delivery,
    Fault,
    Phone,
    RegisterCall,
    SentMessage,
    Signup,
    Subscription,
    Switches,
    Token,
    Waba,
)
from .payloads import DISCONNECTING, Target, build

SCENARIOS = ("cloud_one", "cloud_two", "coexistence", "waba_only")
FINISH_EVENTS = {
    "cloud_one": "FINISH",
    "cloud_two": "FINISH",
    "coexistence": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
    "waba_only": "FINISH_ONLY_WABA",
}


def partner_business_id() -> str:
    return settings.SANDBOX_PARTNER_BUSINESS_ID


def target_for(waba: Waba, phone: Phone | None = None, **extra: Any) -> Target:
    phone = phone or waba.phones.order_by("created_at", "id").first()
    target = Target(partner_business_id=partner_business_id(),
                    partner_app_id=settings.META_APP_ID or "920000000000001",
                    waba_id=waba.id, owner_business_id=waba.business_id, **extra)
    if phone:
        target.phone_number_id = phone.id
        target.display_phone_number = phone.digits
    return target


# --- signup ------------------------------------------------------------------------------------

def _new_number() -> str:
    digits = ids.numeric_id("9", 9)
    return f"+55 11 {digits[:5]}-{digits[5:]}"


def _phones_for(waba: Waba, choices: dict[str, Any]) -> list[Phone]:
    scenario = choices["scenario"]
    name = waba.business.name
    if scenario == "waba_only":
        return []
    if scenario == "coexistence":
        number = choices.get("coex_number") or _new_number()
        return [Phone.objects.create(
            id=ids.numeric_id("304"), waba=waba, display_phone_number=number, verified_name=name,
            is_on_biz_app=True, registered=True,  # already registered by the phone app
            share_history=bool(choices.get("share_history", True)), throughput_level="STANDARD")]
    count = 2 if scenario == "cloud_two" else 1
    return [Phone.objects.create(id=ids.numeric_id("304"), waba=waba,
                                 display_phone_number=_new_number(), verified_name=name)
            for _ in range(count)]


def token_issue(business: Business) -> Token:
    """A business token covering every WABA of the business shared with the partner."""
    expires_in = Switches.get().token_expires_in
    return Token.objects.create(
        token=ids.business_token(), business=business,
        waba_ids=list(business.wabas.filter(shared=True).values_list("id", flat=True)),
        user_id=ids.numeric_id("122", 17),
        expires_at=timezone.now() + timedelta(seconds=expires_in) if expires_in else None,
    )


@transaction.atomic
def _create_assets(choices: dict[str, Any]) -> tuple[Business, Waba, list[Phone]]:
    business = Business.objects.filter(pk=choices.get("business_id") or "").first()
    if business is None:
        business = Business.objects.create(id=ids.numeric_id("203"),
                                           name=choices.get("business_name") or "Imobiliária")
    waba = Waba.objects.filter(pk=choices.get("waba_id") or "", business=business).first()
    if waba is None:
        waba = Waba.objects.create(id=ids.numeric_id("102"), business=business,
                                   name=choices.get("waba_name") or business.name)
    else:
        waba.shared = True
        waba.save(update_fields=["shared"])
    return business, waba, _phones_for(waba, choices)


def finish_message(event: str, business: Business, waba: Waba, phones: list[Phone]) -> dict:
    """The `WA_EMBEDDED_SIGNUP` message, shaped per finish type (META-PLATFORM.md §1.3)."""
    if event == "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING":
        data: dict[str, Any] = {"waba_id": waba.id}  # coexistence shows only the WABA
    elif event == "FINISH_ONLY_WABA":
        data = {"waba_id": waba.id, "business_id": business.id}
    else:
        data = {"phone_number_id": phones[0].id, "waba_id": waba.id, "business_id": business.id}
    return {"data": data, "type": "WA_EMBEDDED_SIGNUP", "event": event, "version": 3}


def cancel_message(current_step: str) -> dict:
    return {"data": {"current_step": current_step}, "type": "WA_EMBEDDED_SIGNUP",
            "event": "CANCEL", "version": 3}


def error_message(signup: Signup, code: str, message: str) -> dict:
    return {"data": {"error_message": message, "error_code": code,
                     "session_id": signup.session_id, "timestamp": str(int(time.time()))},
            "type": "WA_EMBEDDED_SIGNUP", "event": "CANCEL", "version": 3}


def signup_finish(signup: Signup) -> dict[str, Any]:
    """Creates Meta's state for a finished signup and sends the account_update webhooks.

    Returns what the page needs: the message and, for the popup, the raw code (shown to no one:
    it goes to the opener only).
    """
    choices = signup.choices
    business, waba, phones = _create_assets(choices)
    token = token_issue(business)
    event = FINISH_EVENTS[choices["scenario"]]
    result: dict[str, Any] = {"business_id": business.id, "waba_id": waba.id,
                              "phone_number_ids": [p.id for p in phones], "event": event}
    code = ""
    if signup.flow == Signup.Flow.POPUP:
        code = ids.auth_code()
        AuthCode.objects.create(code=code, token=token)
        result["message"] = finish_message(event, business, waba, phones)
    Signup.objects.filter(pk=signup.pk).update(status="finished", step="done", result=result)
    _emit_partner_added(signup, waba)
    return {**result, "code": code}


def _emit_partner_added(signup: Signup, waba: Waba) -> list[int]:
    switches = Switches.get()
    echo = signup.tracking_code if switches.echo_tracking_code else ""
    target = target_for(waba, tracking_code=echo)
    steps = [Step(["partner_added"], [build("partner_added", target)])]
    if signup.flow == Signup.Flow.POPUP:
        # Real logs: PARTNER_APP_INSTALLED follows a few seconds later (§4.1).
        steps.append(Step(["partner_app_installed"], [build("partner_app_installed", target)],
                          delay_ms=switches.app_installed_delay_ms))
    return delivery.emit(steps)


# --- Graph side effects ------------------------------------------------------------------------

def pin_digest(pin: str) -> str:
    return hashlib.sha256(f"{settings.META_APP_SECRET}:{pin}".encode()).hexdigest()


def register_call(phone: Phone, result: str) -> None:
    RegisterCall.objects.create(phone=phone, result=result)


def smb_sync_start(phone: Phone, sync_type: str) -> str:
    """Accepts the one allowed sync of this type and emits its webhooks; returns request_id."""
    request_id = ids.request_id()
    field = "contacts_request_id" if sync_type == "smb_app_state_sync" else "history_request_id"
    setattr(phone, field, request_id)
    phone.save(update_fields=[field])
    target = target_for(phone.waba, phone)
    gap = Switches.get().event_gap_ms
    if sync_type == "smb_app_state_sync":
        steps = [Step(["contacts_add"], [build("contacts_add", target)], delay_ms=gap)]
    elif not phone.share_history:
        steps = [Step(["history_declined"], [build("history_declined", target)], delay_ms=gap)]
    else:
        # Chunks arrive out of order (§4.4): phase 1 chunk 2 comes before chunk 1.
        kinds = ["history_phase0", "history_phase1_chunk2", "history_phase1_chunk1",
                 "history_phase2", "history_media"]
        steps = [Step([kind], [build(kind, target)], delay_ms=gap) for kind in kinds]
        media_register(phone.waba, [c for step in steps for c in step.changes])
    delivery.emit(steps)
    return request_id


def message_send(phone: Phone, payload: dict[str, Any]) -> SentMessage:
    """Records an outbound message and emits its sent → delivered → read statuses."""
    to = "".join(ch for ch in str(payload.get("to", "")) if ch.isdigit())
    user_id = "" if to else str(payload.get("recipient") or "")
    sent = SentMessage.objects.create(wamid=ids.wamid(), phone=phone, to=to or user_id,
                                      type=str(payload.get("type") or "text"), payload=payload)
    target = target_for(phone.waba, phone, wamid=sent.wamid, recipient=to,
                        recipient_user_id=user_id,
                        biz_opaque_callback_data=str(payload.get("biz_opaque_callback_data", "")))
    gap = Switches.get().event_gap_ms
    kinds = ["status_sent", "status_delivered", "status_read"]
    interactive = payload.get("interactive")
    if isinstance(interactive, dict) and interactive.get("type") == "request_contact_info":
        # The user taps "share contact info": its number comes back as a contacts message.
        kinds.append("contact_shared")
    steps = [Step([kind], [build(kind, target)], delay_ms=gap) for kind in kinds]
    delivery.emit(steps)
    return sent


# --- events fired by hand (state API, listing page, tests) ---------------------------------

def event_send(kind: str, *, waba_id: str = "", phone_id: str = "", tracking_code: str = "",
               count: int = 1) -> list[int]:
    waba = Waba.objects.filter(pk=waba_id).first() if waba_id else None
    phone = Phone.objects.filter(pk=phone_id).first() if phone_id else None
    if phone and waba is None:
        waba = phone.waba
    if waba is None:
        waba = Waba.objects.order_by("-created_at").first()
    target = target_for(waba, phone, tracking_code=tracking_code) if waba else Target(
        partner_business_id=partner_business_id(), tracking_code=tracking_code)
    gap = Switches.get().event_gap_ms
    steps = [Step([kind], [build(kind, target)], delay_ms=gap if i else 0) for i in range(count)]
    if waba and kind in MEDIA_KINDS:
        for step in steps:
            media_register(waba, step.changes)
    if waba and kind in DISCONNECTING:
        waba_disconnect(waba)
    return delivery.emit(steps)


def waba_disconnect(waba: Waba) -> None:
    """What Meta does when the partner is removed: tokens revoked, no more webhooks."""
    Waba.objects.filter(pk=waba.pk).update(shared=False)
    Subscription.objects.filter(waba=waba).delete()
    for token in Token.objects.filter(business_id=waba.business_id, revoked=False):
        if waba.id in token.waba_ids:
            Token.objects.filter(pk=token.pk).update(revoked=True)


def tokens_revoke(*, waba_id: str = "") -> int:
    tokens = Token.objects.filter(revoked=False)
    revoked = [t.pk for t in tokens if not waba_id or waba_id in t.waba_ids]
    return Token.objects.filter(pk__in=revoked).update(revoked=True)


def reset() -> None:
    """Forgets everything: stops sending first so no thread writes into a cleared table."""
    delivery.stop_all()
    for model in (Attempt, Delivery, Fault, SentMessage, RegisterCall, AuthCode, Token,
                  Subscription, Phone, Waba, Business, Signup, Switches):
        model.objects.all().delete()


def delivery_payload(row: Delivery) -> Any:
    try:
        return json.loads(bytes(row.body))
    except ValueError:
        return None


def webhook_url_for(waba: Waba) -> str:
    sub = Subscription.objects.filter(waba=waba).first()
    return (sub.override_callback_uri if sub else "") or Switches.get().target_url
