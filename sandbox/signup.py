"""The Embedded Signup pages: the JS SDK popup (`/dialog/`) and the hosted link (`/onboard/`).

A person walks: business → WABA → number (Cloud API with one or two numbers, no number, or the
existing WhatsApp Business app for coexistence) → share chat history (coexistence) → review.
As Meta does since 2026-10-15, only a v4 launch with `featureType:
whatsapp_business_app_onboarding` offers the app (coexistence); a v2/v3 launch, or v4 without
that feature type, gets the Cloud API (new number) flow only (`Signup.offers_coexistence`).
Cancel and "simulate a Meta error" are offered on every step. The popup ends by posting Meta's
`WA_EMBEDDED_SIGNUP` message (a JSON string) to the opener and handing the SDK its auth
response; the hosted link ends with the PARTNER_ADDED webhook only (META-PLATFORM.md §1.3–1.4).
"""

import functools
import json
import re
import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from . import ids, services
from .models import Business, Signup, Waba

STEPS = ["business", "waba", "number", "history", "review"]
# The `current_step` Meta reports when the person cancels on each of our steps.
META_STEPS = {
    "business": "BUSINESS_ACCOUNT_SELECTION",
    "waba": "WABA_PHONE_PROFILE_PICKER",
    "number": "PHONE_NUMBER_SETUP",
    "history": "PHONE_NUMBER_VERIFICATION",
    "review": "PERMISSIONS",
}
# Errors a person can run into (errors page, META-PLATFORM.md §3), in the user's language.
META_ERRORS = {
    "2655093": "Este número já está compartilhado com um parceiro. Desconecte-o no app WhatsApp "
               "Business antes de continuar.",
    "3441041": "O número não está associado à empresa selecionada.",
    "3441045": "Este número ainda não pode ser conectado: use mais o app WhatsApp Business e "
               "tente novamente.",
    "2655095": "Este não é um número do app WhatsApp Business.",
    "3441042": "Este recurso não está disponível na sua região.",
    "3441049": "Desconecte a plataforma comercial atual no app e aguarde 15 minutos.",
    "4563015": "Atualize o app WhatsApp Business para continuar.",
}
SCENARIO_LABELS = {
    "cloud_one": "Cadastrar um número novo na API de Nuvem",
    "cloud_two": "Cadastrar dois números na API de Nuvem (escolher depois)",
    "coexistence": "Conectar o app WhatsApp Business existente",
    "waba_only": "Continuar sem número por enquanto",
}


def opener_friendly(view):
    """Keeps `window.opener` alive across origins, as Facebook's dialog does.

    Django's default `Cross-Origin-Opener-Policy: same-origin` would sever the popup from the
    partner's page, and the WA_EMBEDDED_SIGNUP message would have nowhere to go.
    """
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Cross-Origin-Opener-Policy"] = "unsafe-none"
        return response
    return wrapped


@opener_friendly
def dialog_start(request: HttpRequest) -> HttpResponse:
    """What `FB.login` opens: validates the app and starts a popup signup session."""
    return _start(request, Signup.Flow.POPUP)


@opener_friendly
def onboard_start(request: HttpRequest) -> HttpResponse:
    """The hosted link `?app_id=&config_id=&extras=` (Hosted Embedded Signup)."""
    return _start(request, Signup.Flow.HOSTED)


def _start(request: HttpRequest, flow: str) -> HttpResponse:
    app_id, config_id = request.GET.get("app_id", ""), request.GET.get("config_id", "")
    problem = _launch_problem(app_id, config_id, request.GET.get("origin", ""), flow)
    if problem:
        # 400: the partner's page launched the flow wrongly; Meta shows an error page too.
        return render(request, "sandbox/signup_invalid.html", {"problem": problem}, status=400)
    signup = Signup.objects.create(
        session_id=ids.session_id(), flow=flow, app_id=app_id, config_id=config_id,
        extras=_extras(request.GET.get("extras", "")), origin=request.GET.get("origin", ""))
    return redirect(_step_url(signup))


def _launch_problem(app_id: str, config_id: str, origin: str, flow: str) -> str:
    if not app_id or app_id != settings.META_APP_ID:
        return "Este app não está disponível: o app_id não corresponde ao app configurado."
    if not config_id:
        return "Configuração ausente: informe o config_id do Login do Facebook para Empresas."
    if flow == Signup.Flow.POPUP and not re.fullmatch(r"https?://[^/\s]+", origin):
        return "A janela não foi aberta pelo SDK (origem desconhecida)."
    return ""


def _extras(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _step_url(signup: Signup) -> str:
    name = "sandbox:dialog-step" if signup.flow == Signup.Flow.POPUP else "sandbox:onboard-step"
    return reverse(name, args=[signup.session_id])


@opener_friendly
def step(request: HttpRequest, session_id: str) -> HttpResponse:
    signup = get_object_or_404(Signup, session_id=session_id)
    if signup.status != "open":
        return render(request, "sandbox/signup_closed.html", {"signup": signup})
    errors: list[str] = []
    if request.method == "POST":
        action = request.POST.get("action", "next")
        if action == "cancel":
            return _end(request, signup, "cancelled",
                        services.cancel_message(META_STEPS[signup.step]))
        if action == "error":
            code = request.POST.get("error_code", "2655093")
            message = META_ERRORS.get(code, META_ERRORS["2655093"])
            return _end(request, signup, "error", services.error_message(signup, code, message))
        if action == "back":
            signup.step = _previous(signup)
            signup.save(update_fields=["step"])
            return redirect(_step_url(signup))
        errors = _apply(signup, request.POST)
        if not errors:
            if signup.step == "review":
                return _finish(request, signup)
            signup.step = _next(signup)
            signup.save(update_fields=["step", "choices"])
            return redirect(_step_url(signup))
    return render(request, "sandbox/signup.html", _context(signup, errors),
                  status=400 if errors else 200)


def _next(signup: Signup) -> str:
    following = STEPS[STEPS.index(signup.step) + 1]
    if following == "history" and signup.choices.get("scenario") != "coexistence":
        following = "review"  # chat history only exists on the WhatsApp Business app
    return following


def _previous(signup: Signup) -> str:
    index = max(STEPS.index(signup.step) - 1, 0)
    if STEPS[index] == "history" and signup.choices.get("scenario") != "coexistence":
        index -= 1
    return STEPS[index]


def _apply(signup: Signup, data) -> list[str]:
    """Validates and stores the answer of the current step; returns pt-BR error texts."""
    choices = dict(signup.choices)
    if signup.step == "business":
        chosen = data.get("business", "new")
        if chosen != "new" and not Business.objects.filter(pk=chosen).exists():
            return ["Escolha um portfólio empresarial da lista."]
        name = data.get("business_name", "").strip()
        if chosen == "new" and not name:
            return ["Informe o nome da empresa."]
        choices.update(business_id="" if chosen == "new" else chosen, business_name=name)
    elif signup.step == "waba":
        chosen = data.get("waba", "new")
        if chosen != "new" and not Waba.objects.filter(pk=chosen).exists():
            return ["Escolha uma conta do WhatsApp Business da lista."]
        choices.update(waba_id="" if chosen == "new" else chosen,
                       waba_name=data.get("waba_name", "").strip())
    elif signup.step == "number":
        scenario = data.get("scenario", "")
        if scenario not in scenarios_for(signup):
            return ["Escolha como conectar o número."]
        number = data.get("coex_number", "").strip()
        if scenario == "coexistence" and number and len(re.sub(r"\D", "", number)) < 10:
            return ["Informe o número do app WhatsApp Business com DDD."]
        choices.update(scenario=scenario, coex_number=number)
    elif signup.step == "history":
        if data.get("share_history") not in ("yes", "no"):
            return ["Responda se deseja compartilhar o histórico de conversas."]
        choices["share_history"] = data["share_history"] == "yes"
    signup.choices = choices
    return []


def scenarios_for(signup: Signup) -> tuple[str, ...]:
    """What the number step offers: coexistence only on a v4 launch asking for it."""
    return tuple(s for s in services.SCENARIOS
                 if s != "coexistence" or signup.offers_coexistence)


def _context(signup: Signup, errors: list[str]) -> dict[str, Any]:
    business_id = signup.choices.get("business_id")
    return {
        "signup": signup,
        "errors": errors,
        "step_number": [s for s in STEPS if s != "history" or
                        signup.choices.get("scenario") == "coexistence"].index(signup.step) + 1
        if signup.step in STEPS else 1,
        "businesses": Business.objects.order_by("-created_at")[:20],
        "wabas": Waba.objects.filter(business_id=business_id).order_by("-created_at")
        if business_id else [],
        "scenarios": {key: label for key, label in SCENARIO_LABELS.items()
                      if key in scenarios_for(signup)},
        "cancel_step": META_STEPS.get(signup.step, ""),
        "scenario_label": SCENARIO_LABELS.get(signup.choices.get("scenario", ""), ""),
        "coexistence_first": signup.offers_coexistence,
        "meta_errors": META_ERRORS,
        "suggested_number": "+55 11 9" + ids.numeric_id("", 4) + "-" + ids.numeric_id("", 4),
        "choices": signup.choices,
    }


def _finish(request: HttpRequest, signup: Signup) -> HttpResponse:
    signup.save(update_fields=["choices"])
    result = services.signup_finish(signup)
    auth = None
    if signup.flow == Signup.Flow.POPUP:
        auth = {"authResponse": {
            "code": result["code"], "userID": ids.numeric_id("1", 16), "expiresIn": 0,
            "graphDomain": "facebook",
            "data_access_expiration_time": int(time.time()) + 90 * 86400,
        }, "status": "connected"}
    return _closing(request, signup, "finished", result.get("message"), auth)


def _end(request: HttpRequest, signup: Signup, status: str, message: dict) -> HttpResponse:
    Signup.objects.filter(pk=signup.pk).update(status=status, result={"message": message})
    return _closing(request, signup, status, message, {"authResponse": None, "status": "unknown"})


def _closing(request: HttpRequest, signup: Signup, status: str, message: dict | None,
             auth: dict | None) -> HttpResponse:
    popup = signup.flow == Signup.Flow.POPUP
    return render(request, "sandbox/signup_done.html", {
        "signup": signup, "status": status, "popup": popup, "message": message or {},
        # Meta sends the event as a JSON *string* (§1.3); the opener JSON.parses it.
        "message_string": json.dumps(message) if (popup and message) else "",
        "auth": auth if popup else None,
        "origin": signup.origin,
    })
