import hashlib
import hmac


def sign(body: bytes, secret: str) -> str:
    """The `X-Hub-Signature-256` value Meta sends for this exact body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def is_valid_signature(body: bytes, header: str, secret: str) -> bool:
    """HMAC-SHA256 of the raw bytes (never a re-serialized object), compared in constant time."""
    if not secret or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(body, secret).encode(), header.strip().encode())
