"""Meta's `signed_request` (data-deletion and deauthorize callbacks).

`<signature>.<payload>`, both base64url without padding: the signature is the HMAC-SHA256 of the
payload *part as sent* (the base64url text, not the decoded JSON), keyed with the app secret;
the payload is JSON `{user_id, algorithm: "HMAC-SHA256", issued_at, ...}`.
"""

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 8192


class SignedRequestError(ValueError):
    """The signed request is missing, malformed, wrongly signed or not HMAC-SHA256."""


@dataclass(frozen=True)
class SignedRequest:
    user_id: str
    issued_at: int | None
    payload: dict[str, Any]


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_request_sign(payload: dict[str, Any], secret: str) -> str:
    """What Meta sends for `payload` (the sandbox and the tests build theirs with it)."""
    body = b64encode(json.dumps(payload, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return f"{b64encode(signature)}.{body}"


def signed_request_parse(value: str, secret: str) -> SignedRequest:
    """Verifies and decodes; raises SignedRequestError (never says which part was wrong to the
    caller beyond that)."""
    if not secret:
        raise SignedRequestError("no app secret configured")
    if not value or len(value) > MAX_LENGTH or value.count(".") != 1:
        raise SignedRequestError("malformed")
    signature_part, payload_part = value.split(".")
    try:
        signature = _b64decode(signature_part)
        payload = json.loads(_b64decode(payload_part))
    except (ValueError, TypeError) as exc:
        raise SignedRequestError("malformed") from exc
    expected = hmac.new(secret.encode(), payload_part.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise SignedRequestError("bad signature")
    if not isinstance(payload, dict) or str(payload.get("algorithm", "")).upper() != "HMAC-SHA256":
        raise SignedRequestError("unsupported algorithm")
    user_id = payload.get("user_id")
    if not isinstance(user_id, str | int) or not str(user_id).strip():
        raise SignedRequestError("no user_id")
    issued_at = payload.get("issued_at")
    return SignedRequest(user_id=str(user_id)[:128],
                         issued_at=issued_at if isinstance(issued_at, int) else None,
                         payload=payload)
