"""Identifiers that look like Meta's, and masking for anything secret that a page shows."""

import base64
import secrets
import time


def numeric_id(prefix: str, length: int = 15) -> str:
    """Graph object ids are numeric strings; the prefix hints the kind (WABA 102…, phone 304…)."""
    rest = length - len(prefix)
    return prefix + "".join(secrets.choice("0123456789") for _ in range(rest))


def business_token() -> str:
    return "EAAS" + secrets.token_urlsafe(48).replace("-", "x").replace("_", "y")


def auth_code() -> str:
    return "AQD" + secrets.token_urlsafe(96)


def session_id() -> str:
    return secrets.token_hex(8)[:15]


def fbtrace_id() -> str:
    return "A" + secrets.token_urlsafe(16)[:22]


def request_id() -> str:
    return secrets.token_hex(16)


def wamid() -> str:
    """`wamid.` + base64, like Meta's message ids."""
    raw = f"SANDBOX{time.time_ns()}{secrets.token_hex(6)}".encode()
    return "wamid." + base64.b64encode(raw).decode()


def bsuid() -> str:
    """Business-scoped user id (META-PLATFORM.md §4.8): country code, dot, digits."""
    return "BR." + "".join(secrets.choice("0123456789") for _ in range(19))


def mask(secret: str) -> str:
    """Enough to tell two values apart, never enough to use one."""
    if not secret:
        return ""
    if len(secret) <= 8:
        return "…"
    return f"{secret[:4]}…{secret[-4:]}"
