"""Standard Webhooks signatures (https://www.standardwebhooks.com): the receiver recomputes
HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}" and refuses old timestamps."""

import base64
import hashlib
import hmac


def secret_key(secret: str) -> bytes:
    """`whsec_<base64>` is the Standard Webhooks form (the key is the decoded bytes); any other
    string is used as its UTF-8 bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, event_id, timestamp, body),
    }
