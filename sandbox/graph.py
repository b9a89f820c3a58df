"""The Graph API endpoints the product calls, answering as graph.facebook.com does (§2–3).

One view receives every `/sandbox/graph/<version>/<path>` call: it applies injected faults,
then dispatches through a table of (method, path pattern) → small handler. Errors always have
Graph's shape `{"error": {message, type, code, error_subcode?, fbtrace_id}}`.
"""

import hmac
import re
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import services
from .graph_access import (
    PHONE_DEFAULT_FIELDS,
    REGISTER_LIMIT,
    GraphError,
    caller_of,
    check_proof,
    invalid_param,
    invalid_token,
    is_system_user_token,
    no_permission,
    phone_for,
    raw_token,
    request_body,
    request_param,
    waba_for,
)
from .graph_app import app_subscriptions, app_token_data, client_wabas, is_app_token
from .graph_media import media_node
from .graph_templates import template_send_check, templates_page
from .models import (
    AuthCode,
    Business,
    Fault,
    Media,
    Phone,
    RegisterCall,
    Subscription,
    Token,
)

# --- request helpers -------------------------------------------------------------------------


# --- handlers ----------------------------------------------------------------------------------
def oauth_access_token(request: HttpRequest) -> dict:
    """Code → business token. The code lives 30 s and works once (§1.2, §2.1)."""
    if request.GET.get("client_id") != settings.META_APP_ID:
        raise invalid_param("Error validating application. Invalid application ID.")
    if not hmac.compare_digest(request.GET.get("client_secret", "").encode(),
                               settings.META_APP_SECRET.encode()):
        raise invalid_param("Error validating client secret.")
    found = (AuthCode.objects.filter(code=request.GET.get("code", ""))
             .select_related("token").first())
    if found is None:
        raise GraphError(400, 100, "Invalid verification code format.")
    if found.expired:
        raise GraphError(400, 100, "This authorization code has expired.", subcode=36007)
    if not found.redeem():
        raise GraphError(400, 100, "This authorization code has been used.", subcode=36009)
    return {"access_token": found.token.token, "token_type": "bearer"}


def debug_token(request: HttpRequest) -> dict:
    """Token metadata, asked with the app token `APP_ID|APP_SECRET` (§2.2)."""
    app_token = f"{settings.META_APP_ID}|{settings.META_APP_SECRET}"
    if not hmac.compare_digest(request_param(request, "access_token").encode(), app_token.encode()):
        raise invalid_token(message="Invalid OAuth access token signature.")
    if is_app_token(request.GET.get("input_token", "")):
        return {"data": app_token_data()}
    token = Token.objects.filter(token=request.GET.get("input_token", "")).first()
    if token is None:
        # Graph answers 200 with is_valid false for a token it cannot parse.
        return {"data": {"error": {"code": 190, "message": "Invalid OAuth access token."},
                         "is_valid": False, "scopes": []}}
    return {"data": _token_data(token)}


def _token_data(token: Token) -> dict:
    expires = int(token.expires_at.timestamp()) if token.expires_at else 0
    waba_ids = list(token.waba_ids)
    data: dict[str, Any] = {
        "app_id": settings.META_APP_ID,
        "type": "SYSTEM_USER",
        "application": "Qualifica Leads (sandbox)",
        "data_access_expires_at": expires,
        "expires_at": expires,  # 0 = never
        "is_valid": not (token.revoked or token.expired),
        "issued_at": int(token.issued_at.timestamp()),
        "scopes": ["whatsapp_business_management", "whatsapp_business_messaging",
                   "business_management", "public_profile"],
        "granular_scopes": [
            {"scope": "whatsapp_business_management", "target_ids": waba_ids},
            {"scope": "whatsapp_business_messaging", "target_ids": waba_ids},
        ],
        "user_id": token.user_id,
    }
    if token.revoked:
        data["error"] = {"code": 190, "subcode": 458,
                         "message": "The user has not authorized application."}
    return data


def system_user_access_tokens(request: HttpRequest, business_id: str) -> dict:
    """Hosted ES: the partner's system user fetches the customer's business token (§1.4)."""
    raw = raw_token(request)
    if not is_system_user_token(raw):
        if Token.objects.filter(token=raw).exists():
            raise GraphError(403, 200, "(#200) The system user token of the partner is required "
                                       "to fetch a business token.", type="OAuthException")
        raise invalid_token()
    check_proof(request, raw, required=True)
    business = Business.objects.filter(pk=business_id).first()
    if business is None or not business.wabas.filter(shared=True).exists():
        raise no_permission(business_id, "post")
    token = (Token.objects.filter(business=business, revoked=False).order_by("-issued_at").first()
             if request_param(request, "fetch_only") == "true" else None)
    if token is None or token.expired:
        token = services.token_issue(business)
    return {"access_token": token.token}


def phone_numbers(request: HttpRequest, waba_id: str) -> dict:
    waba = waba_for(caller_of(request), waba_id, "get")
    fields = _fields(request, PHONE_DEFAULT_FIELDS)
    rows = [_phone_fields(p, fields, _version(request))
            for p in waba.phones.order_by("created_at", "id")]
    return {"data": rows, "paging": {"cursors": {"before": "QVFIUk", "after": "QVFIUl"}}}


def _fields(request: HttpRequest, default: tuple[str, ...]) -> list[str]:
    asked = [f.strip() for f in request.GET.get("fields", "").split(",") if f.strip()]
    # Graph always returns the id; `throughput{level}` style sub-selections are accepted.
    asked = [re.sub(r"\{.*\}$", "", f) for f in asked]
    return list(dict.fromkeys([*asked, "id"])) if asked else list(default)


# The portfolio's messaging limit: `whatsapp_business_manager_messaging_limit` from Graph v24,
# `messaging_limit_tier` up to v23 only; asking a version for the other one is error #100.
LIMIT_FIELD, OLD_LIMIT_FIELD = "whatsapp_business_manager_messaging_limit", "messaging_limit_tier"
FIRST_VERSION_WITH_LIMIT_FIELD = 24


def _version(request: HttpRequest) -> int | None:
    """The major Graph version of the URL (`v25.0` → 25), set by `graph()`."""
    digits = str(getattr(request, "graph_version", "")).lstrip("vV").split(".")[0]
    return int(digits) if digits.isdigit() else None


def _phone_fields(phone: Phone, fields: list[str], version: int | None = None) -> dict:
    old = version is not None and version < FIRST_VERSION_WITH_LIMIT_FIELD
    missing = OLD_LIMIT_FIELD if not old else LIMIT_FIELD
    if missing in fields:
        raise GraphError(400, 100, f"(#100) Tried accessing nonexisting field ({missing}) on "
                                   "node type (WhatsAppBusinessPhoneNumber)",
                         type="GraphMethodException")
    values: dict[str, Any] = {
        "id": phone.id,
        "display_phone_number": phone.display_phone_number,
        "verified_name": phone.verified_name,
        "quality_rating": phone.quality_rating,
        "platform_type": phone.platform_type,
        "is_on_biz_app": phone.is_on_biz_app,
        "code_verification_status": phone.code_verification_status,
        "throughput": {"level": phone.throughput_level},
        "last_onboarded_time": phone.created_at.strftime("%Y-%m-%dT%H:%M:%S+0000"),
        "webhook_configuration": {"application": services.webhook_url_for(phone.waba)},
        "name_status": "APPROVED",
        "status": "CONNECTED" if phone.registered else "PENDING",
        # Every sandbox portfolio is new: Meta's first tier (250 users in 24 h).
        OLD_LIMIT_FIELD if old else LIMIT_FIELD: "TIER_250",
        "account_mode": "LIVE",
        "is_official_business_account": False,
        "health_status": {"can_send_message": "AVAILABLE"},
    }
    return {name: values[name] for name in fields if name in values}


def subscribed_apps(request: HttpRequest, waba_id: str) -> dict:
    waba = waba_for(caller_of(request), waba_id, request.method)
    if request.method == "GET":
        sub = Subscription.objects.filter(waba=waba).first()
        return {"data": [_subscription_row(sub)] if sub else []}
    if request.method == "DELETE":
        Subscription.objects.filter(waba=waba).delete()
        return {"success": True}
    uri = str(request_body(request).get("override_callback_uri") or "")
    if len(uri) > 200:
        raise invalid_param("(#100) Param override_callback_uri must be at most 200 chars long")
    # Calling it again without a body removes the override (§3.2).
    Subscription.objects.update_or_create(waba=waba, defaults={"override_callback_uri": uri})
    return {"success": True}


def _subscription_row(sub: Subscription) -> dict:
    row: dict[str, Any] = {"whatsapp_business_api_data": {
        "link": "https://www.facebook.com/games/?app_id=" + settings.META_APP_ID,
        "name": "Qualifica Leads", "id": settings.META_APP_ID}}
    if sub.override_callback_uri:
        row["override_callback_uri"] = sub.override_callback_uri
    return row


def register(request: HttpRequest, phone_id: str) -> dict:
    phone = phone_for(caller_of(request), phone_id, "post")
    # Every request counts toward the limit, good or bad, as Meta counts them (§3.4).
    if RegisterCall.recent_count(phone) >= REGISTER_LIMIT:
        services.register_call(phone, "133016")
        raise GraphError(400, 133016, "Account register deregister rate limit exceeded",
                         error_data={"messaging_product": "whatsapp", "details": (
                             "Registration is blocked for this number for 72 hours: too many "
                             "register/deregister requests.")})
    pin = str(request_body(request).get("pin", ""))
    error = _register_error(phone, pin)
    services.register_call(phone, str(error.code) if error else "ok")
    if error:
        raise error
    Phone.objects.filter(pk=phone.pk).update(registered=True, pin_sha256=services.pin_digest(pin))
    return {"success": True}


def _register_error(phone: Phone, pin: str) -> GraphError | None:
    if phone.is_on_biz_app:
        # Coexistence numbers are registered by the phone app; /register must not be called.
        return invalid_param("(#100) This phone number is connected to the WhatsApp Business app "
                             "(coexistence) and is already registered. Do not call /register.")
    if not re.fullmatch(r"\d{6}", pin):
        return invalid_param("(#100) Param pin must be a 6-digit number")
    if phone.pin_sha256 and phone.pin_sha256 != services.pin_digest(pin):
        return GraphError(400, 133005, "Two step verification PIN Mismatch",
                          error_data={"messaging_product": "whatsapp",
                                      "details": "The PIN does not match the two-step PIN."})
    return None


def smb_app_data(request: HttpRequest, phone_id: str) -> dict:
    phone = phone_for(caller_of(request), phone_id, "post")
    sync_type = str(request_body(request).get("sync_type", ""))
    if sync_type not in ("smb_app_state_sync", "history"):
        raise invalid_param("(#100) Param sync_type must be one of {SMB_APP_STATE_SYNC, HISTORY}")
    if not phone.is_on_biz_app:
        raise invalid_param("(#100) This phone number is not connected to the WhatsApp Business "
                            "app (coexistence): nothing to synchronize.")
    done = (phone.contacts_request_id if sync_type == "smb_app_state_sync"
            else phone.history_request_id)
    if done:
        # Each sync type is allowed once per onboarding (§3.5); Meta's exact code is unverified.
        raise invalid_param(f"(#100) The {sync_type} synchronization was already requested for "
                            "this phone number. Offboard and onboard again to repeat it.")
    request_id = services.smb_sync_start(phone, sync_type)
    return {"messaging_product": "whatsapp", "request_id": request_id}


def messages(request: HttpRequest, phone_id: str) -> dict:
    phone = phone_for(caller_of(request), phone_id, "post")
    payload = request_body(request)
    if not (phone.registered or phone.is_on_biz_app):
        raise GraphError(400, 133010, "Account not registered",
                         error_data={"messaging_product": "whatsapp",
                                     "details": "Phone number not registered on the WhatsApp "
                                                "Business Platform."})
    to = "".join(ch for ch in str(payload.get("to", "")) if ch.isdigit())
    # A username-only user: its BSUID in `recipient`, no `to` (if both, `to` wins; §0).
    recipient = "" if to else str(payload.get("recipient") or "")
    if not (to or re.fullmatch(r"[A-Z]{2}\.[A-Za-z0-9.]{1,140}", recipient)):
        raise invalid_param("(#100) The parameter to is required.")
    if payload.get("type") == "template":
        template_send_check(payload)
    sent = services.message_send(phone, payload)
    contact = {"input": str(payload.get("to")), "wa_id": to} if to else {
        "input": recipient, "user_id": recipient}
    return {"messaging_product": "whatsapp", "contacts": [contact],
            "messages": [{"id": sent.wamid}]}


def message_templates(request: HttpRequest, waba_id: str) -> dict:
    waba_for(caller_of(request), waba_id, "get")
    return templates_page(request)


def node(request: HttpRequest, node_id: str) -> dict:
    """`GET /{phone}` (e.g. `?fields=is_on_biz_app,platform_type`) or `GET /{waba}`."""
    if Media.objects.filter(pk=node_id).exists():
        return media_node(request, node_id)
    caller = caller_of(request)
    if Phone.objects.filter(pk=node_id).exists():
        return _phone_fields(phone_for(caller, node_id, "get"),
                             _fields(request, PHONE_DEFAULT_FIELDS), _version(request))
    waba = waba_for(caller, node_id, "get")
    values: dict[str, Any] = {
        "id": waba.id, "name": waba.name, "timezone_id": "1", "currency": "BRL",
        "message_template_namespace": "sandbox_" + waba.id[-6:],
        # Only when asked for (`?fields=owner_business_info`), as Graph answers.
        "owner_business_info": {"name": waba.business.name, "id": waba.business_id},
    }
    return {name: values[name] for name in _fields(request, WABA_DEFAULT_FIELDS)
            if name in values}


WABA_DEFAULT_FIELDS = ("id", "name", "timezone_id", "message_template_namespace")


Handler = Callable[..., dict]
ROUTES: list[tuple[set[str], re.Pattern[str], Handler]] = [
    ({"GET"}, re.compile(r"^oauth/access_token$"), oauth_access_token),
    ({"GET"}, re.compile(r"^debug_token$"), debug_token),
    ({"POST"}, re.compile(r"^(\d+)/system_user_access_tokens$"), system_user_access_tokens),
    ({"GET"}, re.compile(r"^(\d+)/phone_numbers$"), phone_numbers),
    ({"GET", "POST", "DELETE"}, re.compile(r"^(\d+)/subscribed_apps$"), subscribed_apps),
    ({"POST"}, re.compile(r"^(\d+)/register$"), register),
    ({"POST"}, re.compile(r"^(\d+)/smb_app_data$"), smb_app_data),
    ({"POST"}, re.compile(r"^(\d+)/messages$"), messages),
    ({"GET"}, re.compile(r"^(\d+)/message_templates$"), message_templates),
    ({"GET"}, re.compile(r"^(\d+)/subscriptions$"), app_subscriptions),
    ({"GET"}, re.compile(r"^(\d+)/client_whatsapp_business_accounts$"), client_wabas),
    ({"GET"}, re.compile(r"^(\d+)$"), node),
]


def _route(method: str, path: str) -> tuple[Handler, tuple[str, ...]]:
    for methods, pattern, handler in ROUTES:
        match = pattern.match(path)
        if match and method in methods:
            return handler, match.groups()
    if any(pattern.match(path) for _, pattern, _ in ROUTES):
        raise GraphError(400, 100, f"Unsupported {method.lower()} request.",
                         type="GraphMethodException")
    raise GraphError(400, 2500, f"Unknown path components: /{path}")


def _injected_fault(request: HttpRequest) -> GraphError | None:
    """Applies live faults matching this call: every delay, then the first error, if any."""
    for fault in Fault.objects.live():
        if fault.method and fault.method.upper() != request.method:
            continue
        if not re.search(fault.path, request.path) or not fault.take():
            continue
        if fault.delay_ms:
            time.sleep(fault.delay_ms / 1000)
        if fault.status:
            code = fault.code if fault.code is not None else (2 if fault.status >= 500 else 100)
            message = fault.message or ("Service temporarily unavailable" if code == 2
                                        else "An unknown error occurred")
            return GraphError(fault.status, code, message, subcode=fault.error_subcode)
    return None


@csrf_exempt
def graph(request: HttpRequest, version: str, path: str) -> JsonResponse:
    try:
        fault = _injected_fault(request)
        if fault:
            raise fault
        request.graph_version = version
        handler, args = _route(request.method or "GET", path.strip("/"))
        return JsonResponse(handler(request, *args))
    except GraphError as error:
        return error.response()
