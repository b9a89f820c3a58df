"""AES-256-GCM for tokens and PINs at rest, with key ids so keys can rotate.

Stored form: `v1:<kid>:<base64(nonce || ciphertext+tag)>`. The key id is the first 8 hex chars
of SHA-256(key), so any configured key (current or old) can be found from the stored value.
"""

import base64
import hashlib
import os
from functools import cache

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

VERSION = "v1"


class DecryptionError(Exception):
    pass


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def _parse_key(hex_key: str) -> bytes:
    try:
        key = bytes.fromhex(hex_key.strip())
    except ValueError as exc:
        raise ImproperlyConfigured("Encryption keys must be hex strings.") from exc
    if len(key) != 32:
        raise ImproperlyConfigured("Encryption keys must be 64 hex characters (32 bytes).")
    return key


@cache
def _keys(current_hex: str, old_hex: tuple[str, ...]) -> tuple[str, dict[str, bytes]]:
    current = _parse_key(current_hex)
    keys = {key_id(current): current}
    for hex_key in old_hex:
        old = _parse_key(hex_key)
        keys.setdefault(key_id(old), old)
    return key_id(current), keys


def _keyring() -> tuple[str, dict[str, bytes]]:
    return _keys(settings.TOKEN_ENCRYPTION_KEY, tuple(settings.TOKEN_ENCRYPTION_OLD_KEYS))


def current_key_id() -> str:
    return _keyring()[0]


def encrypt(plaintext: str) -> str:
    kid, keys = _keyring()
    nonce = os.urandom(12)
    sealed = AESGCM(keys[kid]).encrypt(nonce, plaintext.encode(), kid.encode())
    return f"{VERSION}:{kid}:{base64.b64encode(nonce + sealed).decode()}"


def stored_key_id(stored: str) -> str:
    return stored.split(":", 2)[1] if stored.count(":") >= 2 else ""


def decrypt(stored: str) -> str:
    try:
        version, kid, payload = stored.split(":", 2)
    except ValueError as exc:
        raise DecryptionError("Not an encrypted value.") from exc
    keys = _keyring()[1]
    if version != VERSION or kid not in keys:
        raise DecryptionError(f"No configured key for key id {kid!r}.")
    raw = base64.b64decode(payload)
    try:
        return AESGCM(keys[kid]).decrypt(raw[:12], raw[12:], kid.encode()).decode()
    except Exception as exc:  # InvalidTag: tampered value or wrong key
        raise DecryptionError("Value could not be decrypted.") from exc
