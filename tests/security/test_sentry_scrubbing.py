"""Issue 14 §4: real Sentry events (captured by a local transport) carry neither API tokens nor
encryption key bytes."""

import logging
import os

import pytest
import sentry_sdk
from django.db import OperationalError, connection
from rest_framework.test import APIClient
from sentry_sdk.transport import Transport

from config.logging import init_sentry
from organizations.models import ApiToken
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


class CollectingTransport(Transport):
    """Keeps every envelope Sentry would have sent, serialized exactly as it would be sent."""

    def __init__(self, options=None):
        super().__init__(options)
        self.sent: list[bytes] = []

    def capture_envelope(self, envelope) -> None:
        self.sent.append(envelope.serialize())

    def text(self) -> str:
        return b"\n".join(self.sent).decode("utf-8", errors="replace")


@pytest.fixture
def sentry():
    transport = CollectingTransport()
    init_sentry("https://public@sentry.invalid/1", transport=transport)
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: disabled again for the other tests


def events(transport: CollectingTransport) -> list[bytes]:
    return [e for e in transport.sent if b'"type":"event"' in e]


def test_bearer_authentication_crash_does_not_ship_the_token(sentry):
    membership = MembershipFactory()
    _, raw = ApiToken.issue(user=membership.user, organization=membership.organization)

    def database_gone(execute, sql, params, many, context):
        if "organization_api_tokens" in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    with connection.execute_wrapper(database_gone):
        response = client.get("/api/v1/whatsapp/connection/status")
    assert response.status_code == 500
    sentry_sdk.flush()

    assert events(sentry), "the crash must reach Sentry"
    assert "server closed the connection unexpectedly" in sentry.text()
    assert raw not in sentry.text()
    assert raw[4:] not in sentry.text()


def test_a_logged_token_is_masked_by_its_qlk_pattern(sentry):
    raw = ApiToken.PREFIX + "Zm9vYmFyLWJhei1xdXV4LXNlY3JldC10b2tlbg"
    logging.getLogger("organizations").error("Rejected header %s from a client", raw)
    sentry_sdk.flush()

    assert "Rejected header" in sentry.text()
    assert raw not in sentry.text()
    assert "[redacted]" in sentry.text()


def decrypt_with(key: bytes, sealed: bytes) -> bytes:
    """Stands in for whatsapp.crypto.decrypt: the key bytes are a local when it fails."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = sealed[:12]
    return AESGCM(key).decrypt(nonce, sealed[12:], b"kid")


def test_decryption_failure_does_not_ship_the_key(sentry):
    key = os.urandom(32)
    hex_key = key.hex()  # noqa: F841  (how the key sits in settings, a local here too)
    try:
        decrypt_with(key, os.urandom(40))
    except Exception:
        sentry_sdk.capture_exception()
    sentry_sdk.flush()

    assert events(sentry), "the failure must reach Sentry"
    text = sentry.text()
    assert "InvalidTag" in text
    assert key.hex() not in text
    assert repr(key)[2:-1] not in text  # the b'\x..' form Sentry gives bytes
    assert all(key not in envelope for envelope in sentry.sent)
