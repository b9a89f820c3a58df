"""Meta's webhook skips the browser middlewares (config.middleware.MachineEndpointMiddleware)
but keeps what matters to it: the request id, the client address behind trusted proxies,
HTTPS (SecurityMiddleware), a Content-Length, and Django's 500 handling."""

import pytest
from django.db import connection

from tests.meta import WEBHOOK_URL, load, post_signed, wire
from tests.support import other_session
from whatsapp.models import WebhookLog
from whatsapp.webhooks import intake

pytestmark = pytest.mark.django_db


def test_a_delivery_gets_no_browser_headers_but_its_request_id_and_length(client):
    body = wire(load("messages_text_inbound.json"))
    response = post_signed(client, body, HTTP_X_REQUEST_ID="meta-delivery-0001")

    assert response.status_code == 200
    assert response["X-Request-ID"] == "meta-delivery-0001"
    assert response["Content-Length"] == str(len(response.content))
    # No session, language or frame-options work for a machine.
    assert "X-Frame-Options" not in response
    assert "Vary" not in response
    assert not response.cookies
    assert WebhookLog.objects.get().headers["X-Hub-Signature-256"].startswith("sha256=")


def test_a_browser_page_still_goes_through_every_middleware(client):
    response = client.get("/privacidade")

    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert "Accept-Language" in response["Vary"]


def test_the_webhook_still_redirects_plain_http_when_https_is_required(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = post_signed(client, wire(load("messages_text_inbound.json")))

    assert response.status_code == 301
    assert response["Location"].startswith("https://")
    assert not WebhookLog.objects.exists()


def test_forged_requests_are_limited_by_the_address_behind_a_trusted_proxy(client, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.RATELIMIT_WEBHOOK_INVALID_PER_MINUTE = 2
    forged = {"secret": "not-the-app-secret", "REMOTE_ADDR": "10.0.0.5"}
    body = wire(load("messages_text_inbound.json"))

    first = [post_signed(client, body, HTTP_X_FORWARDED_FOR="203.0.113.7", **forged).status_code
             for _ in range(3)]
    other = post_signed(client, body, HTTP_X_FORWARDED_FOR="203.0.113.8", **forged).status_code

    # The proxy's own address is shared by everyone: only the client behind it is limited.
    assert first == [403, 403, 429]
    assert other == 403


def test_an_error_in_the_view_is_still_a_500_for_meta_to_retry(client, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(intake, "webhook_store", broken)
    client.raise_request_exception = False
    response = post_signed(client, wire(load("messages_text_inbound.json")))

    assert response.status_code == 500
    assert not WebhookLog.objects.exists()


def test_the_verification_handshake_goes_the_same_way(client, settings):
    response = client.get(WEBHOOK_URL, {"hub.mode": "subscribe", "hub.challenge": "42",
                                        "hub.verify_token": settings.META_WEBHOOK_VERIFY_TOKEN})

    assert (response.status_code, response.content) == (200, b"42")
    assert "X-Frame-Options" not in response


def _terminate(pid: int) -> None:
    """Ends a PostgreSQL session from another one, as a restart or a failover would."""
    with other_session(autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.django_db(transaction=True)
def test_a_delivery_on_a_connection_that_died_is_stored_once_on_a_new_one(client):
    """The webhook skips the per-request health check (`SELECT 1`); a connection that died
    between two deliveries is found by the INSERT itself, which goes again on a new one."""
    first = post_signed(client, wire(load("messages_text_inbound.json")))
    dead = connection.connection.info.backend_pid
    _terminate(dead)
    connection.health_check_done = True  # as after a request's own check (or none at all)

    second = post_signed(client, wire(load("messages_status_delivered.json")))

    assert (first.status_code, second.status_code) == (200, 200)
    assert connection.connection.info.backend_pid != dead
    assert WebhookLog.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_statement_that_fails_on_a_live_connection_is_not_sent_again(client):
    """Only a dead connection earns a second try: a lock timeout answers 503 at once (Meta
    retries later), on the same connection, without waiting for the lock twice."""
    post_signed(client, wire(load("messages_text_inbound.json")))  # a connection is open
    pid = connection.connection.info.backend_pid
    db = connection.settings_dict
    with other_session() as other:
        # New sessions too (a second try would open one): never wait for the lock for good.
        other.execute(f'ALTER DATABASE "{db["NAME"]}" SET lock_timeout = \'300ms\'')
        other.commit()
        try:
            other.execute(f"LOCK TABLE {WebhookLog._meta.db_table} IN ACCESS EXCLUSIVE MODE")
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '300ms'")
            connection.health_check_done = True
            response = post_signed(client, wire(load("messages_status_delivered.json")))
        finally:
            other.rollback()
            other.execute(f'ALTER DATABASE "{db["NAME"]}" RESET lock_timeout')
            other.commit()

    assert response.status_code == 503
    assert connection.connection.info.backend_pid == pid
    assert WebhookLog.objects.count() == 1
