"""Keeps tokens, codes and PINs out of logs and Sentry events; request context; JSON lines."""

import contextvars
import json
import logging
import re
from typing import Any

_SECRET_KEYS = ("access_token", "token", "code", "pin", "client_secret", "appsecret_proof",
                "input_token", "password", "authorization", "secret")
# key=value / "key": "value" pairs whose key names a secret, and bare Meta tokens ("EAA…").
_PAIR = re.compile(
    r"""(?P<k>["']?(?:""" + "|".join(_SECRET_KEYS)
    + r""")["']?\s*[:=]\s*["']?)(?P<v>[^"'&\s,}]+)""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._\-|]+", re.IGNORECASE)
_META_TOKEN = re.compile(r"\bEAA[A-Za-z0-9]{10,}")
MASK = "[redacted]"


def scrub(text: str) -> str:
    text = _PAIR.sub(lambda m: m.group("k") + MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    return _META_TOKEN.sub(MASK, text)


class ScrubSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {
            k: (MASK if str(k).lower() in _SECRET_KEYS else _scrub_value(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def before_send(event: dict, hint: dict) -> dict:
    """Sentry hook: the same scrubbing for every string and secret-named key of an event."""
    return _scrub_value(event)


def init_sentry(dsn: str) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        before_send=before_send,
    )


# Set by config.middleware.RequestIdMiddleware (web) and the Celery task signals (workers).
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
org_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("org_id", default="")


def set_org_id(org_id: object) -> None:
    """Tags the rest of this request's/task's log lines with the tenant, once it is known."""
    org_id_var.set(str(org_id) if org_id else "")


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.org_id = org_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; the message and traceback scrubbed again, as a last line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        org_id = getattr(record, "org_id", org_id_var.get())
        if org_id:
            entry["org_id"] = org_id
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)
