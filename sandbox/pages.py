"""The sandbox's human pages: the listing at /sandbox/ and the SDK script."""

import json

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from . import delivery, services
from .models import (
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

BOOL_SWITCHES = ("echo_tracking_code", "duplicate", "reorder", "batch", "require_appsecret_proof")


def sdk_js(request: HttpRequest) -> HttpResponse:
    dialog_url = request.build_absolute_uri(reverse("sandbox:dialog"))
    origin = request.build_absolute_uri("/").rstrip("/")
    body = render(request, "sandbox/sdk.js", {
        "dialog_url_json": json.dumps(dialog_url), "sandbox_origin_json": json.dumps(origin),
    }).content
    return HttpResponse(body, content_type="application/javascript; charset=utf-8")


@require_http_methods(["GET"])
def index(request: HttpRequest) -> HttpResponse:
    deliveries = Delivery.objects.prefetch_related("attempts").order_by("-id")[:200]
    return render(request, "sandbox/index.html", {
        "switches": Switches.get(),
        "partner_business_id": services.partner_business_id(),
        "in_flight": delivery.in_flight(),
        "businesses": Business.objects.order_by("-created_at"),
        "wabas": Waba.objects.select_related("business").order_by("-created_at"),
        "phones": Phone.objects.select_related("waba").order_by("-created_at"),
        "subscriptions": Subscription.objects.select_related("waba"),
        "tokens": Token.objects.order_by("-issued_at"),
        "codes": AuthCode.objects.order_by("-created_at")[:50],
        "signups": Signup.objects.order_by("-created_at")[:50],
        "sent_messages": SentMessage.objects.order_by("-created_at")[:50],
        "faults": Fault.objects.all(),
        "deliveries": [(d, services.delivery_payload(d)) for d in deliveries],
        "kinds": list(KINDS),
    })


@require_POST
def switches_form(request: HttpRequest) -> HttpResponse:
    row = Switches.get()
    for name in BOOL_SWITCHES:
        setattr(row, name, request.POST.get(name) == "on")
    row.webhook_url = request.POST.get("webhook_url", "").strip()
    row.token_expires_in = _int(request.POST.get("token_expires_in"), row.token_expires_in)
    row.save()
    return redirect("sandbox:index")


@require_POST
def event_form(request: HttpRequest) -> HttpResponse:
    kind = request.POST.get("kind", "")
    if kind in KINDS:
        services.event_send(kind, waba_id=request.POST.get("waba_id", ""),
                            phone_id=request.POST.get("phone_number_id", ""),
                            count=max(1, min(_int(request.POST.get("count"), 1), 100)))
    return redirect("sandbox:index")


@require_POST
def reset_form(request: HttpRequest) -> HttpResponse:
    services.reset()
    return redirect("sandbox:index")


def _int(raw: str | None, default: int) -> int:
    try:
        return max(0, int(raw or ""))
    except ValueError:
        return default
