"""Keeps tokens, codes and PINs out of logs and Sentry events."""

import logging
import re
from typing import Any

_SECRET_KEYS = ("access_token", "token", "code", "pin", "client_secret", "appsecret_proof",
                "input_token", "password", "authorization", "secret")
# key=value / "key": "value" pairs whose key names a secret, and bare Meta tokens ("EAA…").
_PAIR = re.compile(
    r"""(?P<k>["']?(?:%s)["']?\s*[:=]\s*["']?)(?P<v>[^"'&\s,}]+)""" % "|".join(_SECRET_KEYS),
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
