"""The webhook endpoint: handshake, signature, store-before-200, announce on commit."""

import pytest
from django.db import OperationalError, connection

from config.cache import redis_client
from tests.meta import PAYLOADS_DIR, WEBHOOK_URL, load, post_signed, wire
from whatsapp.models import WebhookLog
from whatsapp.webhooks import inbox
from whatsapp.webhooks.process import webhook_process
from whatsapp.webhooks.signatures import is_valid_signature, sign

pytestmark = pytest.mark.django_db


def test_verification_handshake_returns_the_bare_challenge(client, settings):
    response = client.get(WEBHOOK_URL, {"hub.mode": "subscribe", "hub.challenge": "1158201444",
                                        "hub.verify_token": settings.META_WEBHOOK_VERIFY_TOKEN})
    assert response.status_code == 200
    assert response.content == b"1158201444"


@pytest.mark.parametrize("params", [
    {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "wrong"},
    {"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": "test-verify-token"},
    {},
])
def test_verification_handshake_refuses_wrong_token_or_mode(client, params):
    assert client.get(WEBHOOK_URL, params).status_code == 403


def test_signed_delivery_is_stored_byte_for_byte_then_announced(
    client, broker, django_capture_on_commit_callbacks
):
    body = wire(load("messages_text_inbound.json"))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_signed(client, body)

    assert response.status_code == 200
    assert response.json() == {"received": True}
    log = WebhookLog.objects.get()
    assert bytes(log.raw_body) == body
    assert log.status == WebhookLog.Status.RECEIVED
    assert log.signature_valid is True
    assert log.headers["X-Hub-Signature-256"].startswith("sha256=")
    # Its change fields are read at intake (they choose its lane); the rest waits.
    assert (log.attempts, log.fields, log.last_error, log.organization) == (0, ["messages"],
                                                                            "", None)
    assert len(callbacks) == 1
    # The id waits in the live inbox under its WABA, and one drainer was started for it.
    assert redis_client().lrange(inbox.TENANT.format("live") + "102000000000101", 0, -1) == [
        str(log.pk).encode()]
    assert len(broker.of("drain_webhook_inbox")) == 1


def test_without_the_inbox_each_delivery_publishes_its_task(
    client, settings, broker, django_capture_on_commit_callbacks
):
    settings.WHATSAPP_WEBHOOK_INBOX = False
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signed(client, load("messages_text_inbound.json"))
    assert response.status_code == 200
    assert broker.of("process_webhook") == [(WebhookLog.objects.get().pk,)]


def test_meta_signature_test_vectors():
    raw = (PAYLOADS_DIR / "signature_vector_body.raw").read_bytes()
    secret = "test_app_secret_not_real"
    assert sign(raw, secret) == (
        "sha256=5ce47c1a51cf963805705bcd9d3afe9fe7bec11f54eb35c44df778e9e4f93424"
    )
    pretty = (PAYLOADS_DIR / "messages_text_inbound.json").read_bytes()
    assert sign(pretty, secret) == (
        "sha256=19a16e205ce6a53369c7ecac755bfc8e39530c88832bfc919444a05bb41f1a31"
    )


def test_body_reserialized_with_decoded_unicode_does_not_verify(client):
    raw = (PAYLOADS_DIR / "signature_vector_body.raw").read_bytes()
    header = "sha256=5ce47c1a51cf963805705bcd9d3afe9fe7bec11f54eb35c44df778e9e4f93424"
    decoded = raw.decode("unicode_escape").encode("utf-8")  # "\u00e1" -> "á" as UTF-8 bytes
    assert decoded != raw
    assert is_valid_signature(raw, header, "test_app_secret_not_real")
    assert not is_valid_signature(decoded, header, "test_app_secret_not_real")

    response = client.post(WEBHOOK_URL, data=decoded, content_type="application/json",
                           HTTP_X_HUB_SIGNATURE_256=header)
    assert response.status_code == 403
    assert not WebhookLog.objects.exists()


@pytest.mark.parametrize("header", [None, "", "sha256=", "sha1=abc", "sha256=" + "0" * 64,
                                    "sha256=5ce47c1a51cf963805705bcd9d3afe9fe7bec11f54eb35c44df778e9e4f93424"])
def test_forged_or_missing_signature_is_403_and_nothing_is_stored(client, broker, header):
    body = wire(load("account_update_partner_added.json"))
    extra = {} if header is None else {"HTTP_X_HUB_SIGNATURE_256": header}
    response = client.post(WEBHOOK_URL, data=body, content_type="application/json", **extra)
    assert response.status_code == 403
    assert not WebhookLog.objects.exists()
    assert broker.published == []


def test_signature_with_another_secret_is_refused(client):
    response = post_signed(client, load("account_update_partner_added.json"), secret="other")
    assert response.status_code == 403
    assert not WebhookLog.objects.exists()


def test_unknown_field_is_stored_acknowledged_and_processed(client):
    response = post_signed(client, load("unknown_field.json"))
    assert response.status_code == 200

    log = WebhookLog.objects.get()
    assert webhook_process(log.pk) == WebhookLog.Status.PROCESSED
    log.refresh_from_db()
    assert log.fields == ["some_future_field"]
    assert log.processed_at is not None


def test_signed_body_that_is_not_json_is_kept_and_marked_dead(client):
    response = post_signed(client, b"not json at all")
    assert response.status_code == 200  # signed by Meta's secret: never refuse, keep it
    log = WebhookLog.objects.get()
    assert webhook_process(log.pk) == WebhookLog.Status.DEAD
    log.refresh_from_db()
    assert "not JSON" in log.last_error


def test_body_over_the_limit_is_413(client, settings):
    settings.WHATSAPP_WEBHOOK_MAX_BYTES = 1000
    response = post_signed(client, b"{" + b" " * 2000 + b"}")
    assert response.status_code == 413
    assert not WebhookLog.objects.exists()


def test_three_megabyte_delivery_is_accepted(client):
    body = wire({"object": "whatsapp_business_account", "entry": [],
                 "padding": "x" * (3 * 1024 * 1024 - 200)})
    assert len(body) <= 3 * 1024 * 1024
    assert post_signed(client, body).status_code == 200


def test_cannot_store_means_5xx_so_meta_retries(client):
    def database_down(execute, sql, params, many, context):
        if sql.startswith('INSERT INTO "whatsapp_webhook_logs"'):
            raise OperationalError("database is down")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(database_down):
        response = post_signed(client, load("account_update_partner_added.json"))
    assert response.status_code == 503
    assert not WebhookLog.objects.exists()


def test_broker_failure_still_acknowledges_a_stored_delivery(
    client, broker, django_capture_on_commit_callbacks
):
    broker.fail("drain_webhook_inbox", error=ConnectionError("down"))
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signed(client, load("account_update_partner_added.json"))
    assert response.status_code == 200
    assert len(broker.refused("drain_webhook_inbox")) == 1  # the announcement did try
    assert WebhookLog.objects.get().status == WebhookLog.Status.RECEIVED
    # The drainer slot stays taken for a short cooldown, then the next delivery or the
    # sweeper starts a drainer (tests/webhooks/test_inbox.py).
    assert 0 < redis_client().ttl(inbox.SLOT.format("live", 0)) <= inbox.STARTING_TTL


def test_processing_twice_is_harmless(client):
    post_signed(client, load("unknown_field.json"))
    log = WebhookLog.objects.get()
    assert webhook_process(log.pk) == WebhookLog.Status.PROCESSED
    assert webhook_process(log.pk) == "skipped"
    log.refresh_from_db()
    assert log.attempts == 1


def test_malformed_content_length_is_a_400(client):
    body = wire(load("unknown_field.json"))
    response = post_signed(client, body, CONTENT_LENGTH="not-a-number")
    assert response.status_code == 400
    assert not WebhookLog.objects.exists()
