"""`manage.py whatsapp_selfcheck`: is this deployment wired correctly, end to end?

Each check answers ok or fail with a plain English detail (never a token or secret):
settings, database, Redis, broker, beat (the /readyz checks, `ops.health`), Graph
reachability, the app token, the app's webhook fields at Meta, and a signed round trip
through the deployment's own public webhook URL (stored, processed, then removed).
The same code talks to Meta in production and to the sandbox in tests (Graph over HTTP).
"""

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta

import requests
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from whatsapp.core.graph import GraphClient, GraphError
from whatsapp.models import WebhookLog
from whatsapp.webhooks.signatures import sign

from .health import readiness

# The app-level webhook fields the product needs on the whatsapp_business_account object
# (App Dashboard › WhatsApp › Configuration; META-PLATFORM.md §3–4): inbound messages and
# statuses, account events (PARTNER_ADDED…), coexistence history, contacts and phone-app
# echoes, template approvals, re-categorisations and quality, and number quality.
# `user_id_update` is not subscribable (§0): BSUID changes come on `messages`.
REQUIRED_FIELDS = (
    "messages",
    "account_update",
    "history",
    "smb_app_state_sync",
    "smb_message_echoes",
    "message_template_status_update",
    "phone_number_quality_update",
    "template_category_update",
    "message_template_quality_update",
)
WEBHOOK_OBJECT = "whatsapp_business_account"
# The round trip's change field: unknown to Meta, so the product stores, acknowledges and
# processes it without touching any tenant's data (dispatch's "stored only" handler).
SELFCHECK_FIELD = "qualifica_selfcheck"
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"
REQUIRED_SETTINGS = ("ALLOWED_HOSTS", "REDIS_URL", "META_APP_ID", "META_CONFIG_ID",
                     "META_APP_SECRET", "META_WEBHOOK_VERIFY_TOKEN")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def run(*, webhook_url: str = "", timeout: float = 30.0) -> list[Check]:
    checks = [check_settings()]
    checks += infrastructure()
    checks += graph_checks()
    checks.append(round_trip(webhook_url or default_webhook_url(), timeout=timeout))
    return checks


def as_json(checks: list[Check]) -> dict:
    return {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}


# --- settings and infrastructure ---------------------------------------------------------------
def check_settings() -> Check:
    problems = [f"{name} is empty" for name in REQUIRED_SETTINGS if not getattr(settings, name)]
    if settings.SECRET_KEY in ("", DEV_SECRET_KEY):
        problems.append("DJANGO_SECRET_KEY is the development default")
    if not os.environ.get("TOKEN_ENCRYPTION_KEY"):
        problems.append("TOKEN_ENCRYPTION_KEY is not set (a key derived from the secret key "
                        "is for development only)")
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        problems.append("the database is not PostgreSQL")
    if settings.DEBUG:
        problems.append("DEBUG is on")
    if problems:
        return Check("settings", False, "; ".join(problems))
    return Check("settings", True, f"required settings present, DEBUG off "
                                   f"({settings.SETTINGS_MODULE})")


def infrastructure() -> list[Check]:
    """The readiness checks, each one named: database, Redis (the cache), broker, beat."""
    found = readiness(["database", "cache", "broker", "beat"])
    names = {"database": "database", "cache": "redis", "broker": "broker", "beat": "beat"}
    checks = []
    for key, name in names.items():
        value = found.get(key, "error: not checked (tasks run in-process, no broker or beat)")
        checks.append(Check(name, not value.startswith("error"), value))
    return checks


# --- Graph ------------------------------------------------------------------------------------
def graph_checks() -> list[Check]:
    client = GraphClient()
    where = f"{settings.META_GRAPH_API_URL}/{settings.META_GRAPH_API_VERSION}"
    try:
        info = client.app_token_info()
    except GraphError as exc:
        if exc.status == 0:
            skipped = "not checked: Graph is unreachable"
            return [Check("graph", False, f"{where} unreachable ({exc.message})"),
                    Check("app_token", False, skipped), Check("webhook_fields", False, skipped)]
        reach = Check("graph", True, f"{where} answered (HTTP {exc.status})")
        token = Check("app_token", False, f"debug_token refused META_APP_ID|META_APP_SECRET: "
                                          f"{_graph_error(exc)}")
    else:
        reach = Check("graph", True, f"{where} answered")
        token = _app_token_check(info)
    return [reach, token, webhook_fields(client)]


def _app_token_check(info: dict) -> Check:
    if not info.get("is_valid"):
        return Check("app_token", False, "debug_token says the app token is not valid")
    if str(info.get("app_id", "")) != str(settings.META_APP_ID):
        return Check("app_token", False, "debug_token answered for another app id")
    return Check("app_token", True, f"valid app token of app {settings.META_APP_ID} "
                                    f"({info.get('application') or 'unnamed'})")


def webhook_fields(client: GraphClient) -> Check:
    try:
        subscriptions = client.app_subscriptions()
    except GraphError as exc:
        return Check("webhook_fields", False,
                     f"GET /{{app_id}}/subscriptions failed: {_graph_error(exc)}")
    found = next((s for s in subscriptions if s.get("object") == WEBHOOK_OBJECT), None)
    if found is None:
        return Check("webhook_fields", False, f"the app has no {WEBHOOK_OBJECT} subscription")
    names = {f.get("name") if isinstance(f, dict) else f for f in found.get("fields") or []}
    missing = [name for name in REQUIRED_FIELDS if name not in names]
    problems = []
    if missing:
        problems.append("missing fields: " + ", ".join(missing))
    if found.get("active") is False:
        problems.append("the subscription is not active")
    callback = found.get("callback_url") or "?"
    if problems:
        return Check("webhook_fields", False, f"{'; '.join(problems)} (callback {callback})")
    return Check("webhook_fields", True, f"{len(REQUIRED_FIELDS)} required fields subscribed, "
                                         f"callback {callback}")


def _graph_error(exc: GraphError) -> str:
    return f"code {exc.code}, HTTP {exc.status}: {exc.message[:200]}"


# --- the round trip -------------------------------------------------------------------------
def default_webhook_url() -> str:
    base = settings.SITE_URL.rstrip("/")
    return f"{base}{reverse('whatsapp:webhook')}" if base else ""


def round_trip(url: str, *, timeout: float,
               sleep: Callable[[float], None] = time.sleep) -> Check:
    """POSTs a delivery signed like Meta's to `url`, waits until this deployment stored and
    processed it, then deletes the row (also when it was not processed in time)."""
    if not url:
        return Check("webhook_round_trip", False,
                     "no webhook URL: set SITE_URL or pass --webhook-url")
    body = _test_delivery()
    started = timezone.now() - timedelta(seconds=5)
    clock = time.monotonic()
    try:
        response = requests.post(url, data=body, timeout=(5, 15), headers={
            "Content-Type": "application/json", "User-Agent": "qualifica-selfcheck",
            "X-Hub-Signature-256": sign(body, settings.META_APP_SECRET)})
    except requests.RequestException as exc:
        return Check("webhook_round_trip", False, f"POST {url} failed: {type(exc).__name__}")
    if response.status_code != 200:
        return Check("webhook_round_trip", False,
                     f"POST {url} answered {response.status_code} (expected 200)")
    rows = WebhookLog.objects.filter(received_at__gte=started,
                                     body_sha256=hashlib.sha256(body).hexdigest())
    deadline = clock + timeout
    status = None
    while time.monotonic() < deadline:
        status = rows.values_list("status", flat=True).first()
        if status == WebhookLog.Status.PROCESSED:
            break
        sleep(0.25)
    elapsed = time.monotonic() - clock
    removed, _ = rows.delete()
    if status is None:
        return Check("webhook_round_trip", False, f"POST {url} answered 200 but no row was "
                                                  f"stored in this database within {timeout:g} s")
    if status != WebhookLog.Status.PROCESSED:
        return Check("webhook_round_trip", False,
                     f"stored but still {status} after {timeout:g} s (are workers running?); "
                     f"test row removed")
    return Check("webhook_round_trip", True, f"signed POST to {url} stored and processed in "
                                             f"{elapsed:.1f} s; test row removed ({removed})")


def _test_delivery() -> bytes:
    now = int(time.time())
    payload = {"object": WEBHOOK_OBJECT, "entry": [{"id": "0", "time": now, "changes": [{
        "field": SELFCHECK_FIELD, "value": {"nonce": uuid.uuid4().hex, "sent_at": now}}]}]}
    return json.dumps(payload, separators=(",", ":")).encode()
