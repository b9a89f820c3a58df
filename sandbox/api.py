"""The sandbox's own HTTP API for tests and the demo: state, switches, faults, events, reset.

JSON in, JSON out, no authentication: the sandbox is only mounted with META_SANDBOX (never in
production). Tokens and codes are always masked in what it returns.
"""

import json
import re
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import delivery, ids, services, signup
from .models import (
    COEXISTENCE_FEATURE,
    AuthCode,
    Business,
    Delivery,
    Fault,
    Phone,
    SentMessage,
    Signup,
    Subscription,
    Switches,
    Token,
    Waba,
)
from .payloads import KINDS

SWITCH_FIELDS = {
    "webhook_url": str, "echo_tracking_code": bool, "duplicate": bool, "reorder": bool,
    "batch": bool, "token_expires_in": int, "require_appsecret_proof": bool,
    "app_installed_delay_ms": int, "event_gap_ms": int, "retry_delays": list,
    "app_fields": "names",
}


class BadRequest(Exception):
    pass


def _json(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError as exc:
        raise BadRequest("Body must be JSON.") from exc
    if not isinstance(data, dict):
        raise BadRequest("Body must be a JSON object.")
    return data


def _api(view):
    """csrf-exempt JSON view; BadRequest becomes a 400 with its message."""
    @csrf_exempt
    def wrapped(request: HttpRequest, *args, **kwargs) -> JsonResponse:
        try:
            return view(request, *args, **kwargs)
        except BadRequest as exc:
            # 400: the caller sent something the sandbox cannot act on.
            return JsonResponse({"error": str(exc)}, status=400)
    wrapped.__name__ = view.__name__
    return wrapped


@_api
@require_http_methods(["GET", "POST"])
def state(request: HttpRequest) -> JsonResponse:
    """GET: everything the sandbox holds and sent. POST: change switches (same as /switches)."""
    if request.method == "POST":
        _switches_update(_json(request))
    return JsonResponse(state_snapshot())


@_api
@require_http_methods(["GET", "POST"])
def switches(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        _switches_update(_json(request))
    return JsonResponse(Switches.get().as_dict())


def _switches_update(data: dict[str, Any]) -> Switches:
    row = Switches.get()
    for name, value in data.items():
        kind = SWITCH_FIELDS.get(name)
        if kind is None:
            raise BadRequest(f"Unknown switch {name!r}; known: {', '.join(SWITCH_FIELDS)}")
        if kind == "names":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise BadRequest(f"{name} must be a list of field names.")
        elif kind is list:
            if not isinstance(value, list) or not all(isinstance(v, int | float) for v in value):
                raise BadRequest(f"{name} must be a list of seconds.")
        elif kind is int and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise BadRequest(f"{name} must be a non-negative integer.")
        elif kind is bool and not isinstance(value, bool):
            raise BadRequest(f"{name} must be true or false.")
        elif kind is str and not isinstance(value, str):
            raise BadRequest(f"{name} must be a string.")
        setattr(row, name, value)
    row.save()
    return row


@_api
@require_http_methods(["POST"])
def reset(request: HttpRequest) -> JsonResponse:
    services.reset()
    return JsonResponse({"reset": True})


@_api
@require_http_methods(["GET", "POST", "DELETE"])
def faults(request: HttpRequest) -> JsonResponse:
    if request.method == "DELETE":
        Fault.objects.all().delete()
    elif request.method == "POST":
        fault = _fault_create(_json(request))
        # 201: a new fault now applies to matching Graph calls.
        return JsonResponse(_fault_dict(fault), status=201)
    return JsonResponse({"faults": [_fault_dict(f) for f in Fault.objects.all()]})


def _fault_create(data: dict[str, Any]) -> Fault:
    path = data.get("path")
    if not isinstance(path, str) or not path:
        raise BadRequest("path (a regular expression) is required.")
    try:
        re.compile(path)
    except re.error as exc:
        raise BadRequest(f"path is not a valid regular expression: {exc}") from exc
    status, delay = data.get("status"), data.get("delay_ms", 0)
    if status is None and not delay:
        raise BadRequest("Give a status, a delay_ms, or both.")
    if status is not None and not (isinstance(status, int) and 400 <= status <= 599):
        raise BadRequest("status must be an HTTP error status (400-599).")
    times = data.get("times")
    if times is not None and not (isinstance(times, int) and times > 0):
        raise BadRequest("times must be a positive integer (omit it for every call).")
    return Fault.objects.create(
        path=path, method=str(data.get("method") or "").upper(), status=status,
        code=data.get("code"), error_subcode=data.get("error_subcode"),
        message=str(data.get("message") or ""), delay_ms=int(delay or 0), remaining=times)


def _fault_dict(fault: Fault) -> dict[str, Any]:
    return {"id": fault.id, "path": fault.path, "method": fault.method or None,
            "status": fault.status, "code": fault.code, "error_subcode": fault.error_subcode,
            "message": fault.message, "delay_ms": fault.delay_ms,
            "remaining": fault.remaining, "hits": fault.hits}


@_api
@require_http_methods(["POST"])
def events(request: HttpRequest) -> JsonResponse:
    """Fires one kind of webhook (`count` times) about a WABA/phone the sandbox holds."""
    data = _json(request)
    kind = str(data.get("kind", ""))
    if kind not in KINDS:
        raise BadRequest(f"Unknown kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    count = data.get("count", 1)
    if not isinstance(count, int) or not 1 <= count <= 1000:
        raise BadRequest("count must be between 1 and 1000.")
    delivery_ids = services.event_send(
        kind, waba_id=str(data.get("waba_id") or ""),
        phone_id=str(data.get("phone_number_id") or ""),
        tracking_code=str(data.get("tracking_code") or ""), count=count)
    # 202: accepted; the deliveries go out in the background.
    return JsonResponse({"deliveries": delivery_ids}, status=202)


@_api
@require_http_methods(["POST"])
def signups(request: HttpRequest) -> JsonResponse:
    """Completes a signup without a browser (for product tests): returns the code and ids."""
    data = _json(request)
    scenario = data.get("scenario", "cloud_one")
    if scenario not in services.SCENARIOS:
        raise BadRequest(f"scenario must be one of {', '.join(services.SCENARIOS)}")
    flow = data.get("flow", "popup")
    if flow not in Signup.Flow.values:
        raise BadRequest("flow must be popup or hosted")
    extras = data.get("extras")
    if extras is None:
        # No launcher given: a current (v4) one, asking for coexistence when that is the scenario.
        extras = {"version": "v4", "featureType": COEXISTENCE_FEATURE} \
            if scenario == "coexistence" else {}
    if not isinstance(extras, dict):
        raise BadRequest("extras must be an object")
    launch = Signup(extras=extras)
    if scenario == "coexistence" and not launch.offers_coexistence:
        # The pages would not offer it either: Meta runs such a launch as Cloud API only.
        raise BadRequest(f"scenario coexistence needs a v4 launch with featureType "
                         f"{COEXISTENCE_FEATURE}; Embedded Signup {launch.es_version} with "
                         f"featureType {launch.feature_type or '(none)'} gets the Cloud API "
                         f"(new number) flow only")
    row = Signup.objects.create(
        session_id=ids.session_id(), flow=flow, app_id=str(data.get("app_id", "")),
        config_id=str(data.get("config_id", "")), extras=extras, step="review",
        choices={"scenario": scenario, "share_history": bool(data.get("share_history", True)),
                 "business_name": str(data.get("business_name") or "Imobiliária Exemplo"),
                 "business_id": str(data.get("business_id") or ""),
                 "coex_number": str(data.get("coex_number") or "")})
    result = services.signup_finish(row)
    # 201: the sandbox created the business, WABA, numbers and token; the code lives 30 s.
    return JsonResponse({**result, "session_id": row.session_id}, status=201)


@_api
@require_http_methods(["POST"])
def tokens_revoke(request: HttpRequest) -> JsonResponse:
    data = _json(request)
    return JsonResponse({"revoked": services.tokens_revoke(waba_id=str(data.get("waba_id") or ""))})


def state_snapshot() -> dict[str, Any]:
    return {
        "switches": Switches.get().as_dict(),
        "partner_business_id": services.partner_business_id(),
        "in_flight": delivery.in_flight(),
        "businesses": [{"id": b.id, "name": b.name}
                       for b in Business.objects.order_by("created_at")],
        "wabas": [{"id": w.id, "business_id": w.business_id, "name": w.name, "shared": w.shared,
                   "subscribed": Subscription.objects.filter(waba=w).exists()}
                  for w in Waba.objects.order_by("created_at")],
        "phones": [_phone_dict(p) for p in Phone.objects.order_by("created_at", "id")],
        "subscriptions": [{"waba_id": s.waba_id, "override_callback_uri": s.override_callback_uri}
                          for s in Subscription.objects.all()],
        "tokens": [{"token": t.masked, "business_id": t.business_id, "waba_ids": t.waba_ids,
                    "expires_at": t.expires_at.isoformat() if t.expires_at else None,
                    "revoked": t.revoked} for t in Token.objects.order_by("issued_at")],
        "codes": [{"code": ids.mask(c.code), "used": c.used_at is not None, "expired": c.expired}
                  for c in AuthCode.objects.order_by("created_at")],
        "signups": [{"session_id": s.session_id, "flow": s.flow, "status": s.status,
                     "step": s.step, "meta_step": signup.META_STEPS.get(s.step, ""),
                     "extras": s.extras, "es_version": s.es_version,
                     "offers_coexistence": s.offers_coexistence,
                     "result": s.result} for s in Signup.objects.order_by("created_at")],
        "sent_messages": [{"wamid": m.wamid, "phone_number_id": m.phone_id, "to": m.to,
                           "type": m.type} for m in SentMessage.objects.order_by("created_at")],
        "faults": [_fault_dict(f) for f in Fault.objects.all()],
        "deliveries": [_delivery_dict(d) for d in
                       Delivery.objects.prefetch_related("attempts").order_by("id")],
    }


def _phone_dict(phone: Phone) -> dict[str, Any]:
    return {"id": phone.id, "waba_id": phone.waba_id,
            "display_phone_number": phone.display_phone_number,
            "is_on_biz_app": phone.is_on_biz_app, "registered": phone.registered,
            "share_history": phone.share_history,
            "register_calls": phone.register_calls.count(),
            "contacts_request_id": phone.contacts_request_id,
            "history_request_id": phone.history_request_id}


def _delivery_dict(row: Delivery) -> dict[str, Any]:
    return {"id": row.id, "kinds": row.kinds, "fields": row.fields, "url": row.url,
            "status": row.status, "duplicate_of": row.duplicate_of_id,
            "created_at": row.created_at.isoformat(),
            "payload": services.delivery_payload(row),
            "attempts": [{"at": a.at.isoformat(), "status_code": a.status_code,
                          "latency_ms": a.latency_ms, "error": a.error}
                         for a in row.attempts.all()]}
