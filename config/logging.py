"""Keeps tokens, codes and PINs out of logs and Sentry events; request context; JSON lines."""

import contextvars
import json
import logging
import re
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration

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
# The product's own API tokens (organizations.models.ApiToken: "qlk_" + token_urlsafe).
_API_TOKEN = re.compile(r"qlk_[A-Za-z0-9_\-]{4,}")
# 64+ hex characters: an encryption key (TOKEN_ENCRYPTION_KEY is 64 hex) or a hash; either way
# not worth the risk in an error report.
_HEX_KEY = re.compile(r"\b[0-9a-fA-F]{64,}\b")
# The repr of a bytes value (how Sentry serializes bytes): raw key material looks like this.
_BYTES_REPR = re.compile(r"""\bb(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
MASK = "[redacted]"


def scrub(text: str) -> str:
    text = _PAIR.sub(lambda m: m.group("k") + MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    text = _API_TOKEN.sub(MASK, text)
    text = _HEX_KEY.sub(MASK, text)
    text = _BYTES_REPR.sub(MASK, text)
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
    if isinstance(value, bytes | bytearray | memoryview):
        return MASK
    if isinstance(value, dict):
        return {
            k: (MASK if str(k).lower() in _SECRET_KEYS else _scrub_value(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def _drop_frame_vars(node: Any) -> None:
    """Removes every stack frame's local variables (`vars`), wherever they appear."""
    if isinstance(node, dict):
        frames = node.get("frames")
        if isinstance(frames, list):
            for frame in frames:
                if isinstance(frame, dict):
                    frame.pop("vars", None)
        for value in node.values():
            _drop_frame_vars(value)
    elif isinstance(node, list):
        for value in node:
            _drop_frame_vars(value)


def before_send(event: dict, hint: dict) -> dict:
    """Sentry hook: no frame's local variables ever leave (even if `include_local_variables`
    were turned back on), bytes are masked whole, and every string is scrubbed (secret-named
    keys, Bearer headers, `qlk_…` and `EAA…` tokens, 64-hex keys, bytes reprs)."""
    _drop_frame_vars(event)
    return _scrub_value(event)


def init_sentry(dsn: str, **options: Any) -> None:
    """Sentry for web and workers. Local variables are off: a frame of the Bearer
    authentication holds the raw token and one of the decryption the key bytes. `options`
    override (tests pass a local `transport`)."""
    sentry_sdk.init(**{
        "dsn": dsn,
        "integrations": [DjangoIntegration(), CeleryIntegration()],
        "send_default_pii": False,
        "include_local_variables": False,
        "before_send": before_send,
        "before_breadcrumb": lambda crumb, hint: _scrub_value(crumb),
        **options,
    })


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
