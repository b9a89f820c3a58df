import pytest
from django.contrib.auth import get_user_model

from audit.models import AuditLog
from audit.services import audit_record
from tests.factories import ConnectionFactory
from tests.meta import load, post_signed
from whatsapp.core import crypto
from whatsapp.models import WebhookLog


def test_encrypt_roundtrip_and_no_plaintext():
    stored = crypto.encrypt("EAAtoken123")
    assert "EAAtoken123" not in stored
    assert stored.startswith(f"v1:{crypto.current_key_id()}:")
    assert crypto.decrypt(stored) == "EAAtoken123"
    assert crypto.encrypt("EAAtoken123") != stored  # fresh nonce every time


def test_tampered_value_is_refused():
    stored = crypto.encrypt("EAAtoken123")
    tampered = stored[:-4] + ("AAAA" if not stored.endswith("AAAA") else "BBBB")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(tampered)


def test_old_key_still_decrypts_during_rotation(settings):
    old_key = settings.TOKEN_ENCRYPTION_KEY
    stored = crypto.encrypt("EAAtoken123")
    settings.TOKEN_ENCRYPTION_KEY = "22" * 32
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(stored)
    settings.TOKEN_ENCRYPTION_OLD_KEYS = [old_key]
    assert crypto.decrypt(stored) == "EAAtoken123"
    assert crypto.stored_key_id(crypto.encrypt("x")) != crypto.stored_key_id(stored)


@pytest.mark.django_db
def test_audit_log_is_append_only():
    entry = audit_record(action=AuditLog.Action.WHATSAPP_CONNECTED, target="waba:1")
    entry.target = "changed"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        AuditLog.objects.all().update(target="x")
    with pytest.raises(PermissionError):
        AuditLog.objects.all().delete()
    assert AuditLog.objects.get().target == "waba:1"


@pytest.fixture
def superuser_client(client, db):
    user = get_user_model().objects.create_superuser("root@q.test", "root@q.test", "pw-123456")
    client.force_login(user)
    return client


ADMIN_PAGES = [
    "/admin/", "/admin/organizations/organization/", "/admin/organizations/membership/",
    "/admin/organizations/apitoken/", "/admin/audit/auditlog/", "/admin/whatsapp/onboarding/",
    "/admin/whatsapp/connection/", "/admin/whatsapp/phonenumber/", "/admin/whatsapp/message/",
    "/admin/whatsapp/webhooklog/", "/admin/auth/user/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_admin_pages_render(superuser_client, url):
    assert superuser_client.get(url).status_code == 200


@pytest.mark.django_db
def test_webhook_log_is_read_only_and_shows_the_pretty_body(superuser_client, client):
    post_signed(client, load("messages_text_inbound.json"))
    log = WebhookLog.objects.get()
    page = superuser_client.get(f"/admin/whatsapp/webhooklog/{log.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "messaging_product" in html
    assert 'name="_save"' not in html
    assert superuser_client.post(f"/admin/whatsapp/webhooklog/{log.pk}/delete/").status_code == 403


@pytest.mark.django_db
def test_admin_never_shows_the_token(superuser_client):
    connection = ConnectionFactory(with_token=True, token="EAAG-super-secret-token")
    html = superuser_client.get(f"/admin/whatsapp/connection/{connection.pk}/change/").content
    assert b"EAAG-super-secret-token" not in html
    assert connection.access_token_encrypted.encode() not in html


@pytest.mark.django_db
def test_openapi_schema_describes_the_api(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    text = response.content.decode()
    assert "/api/v1/whatsapp/onboarding-url" in text
    assert "/api/v1/whatsapp/check-connection" in text


@pytest.mark.django_db
def test_health_endpoints(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    body = client.get("/readyz").json()
    assert {k: body["checks"][k] for k in ("database", "cache", "broker")} == {
        "database": "ok", "cache": "ok", "broker": "ok"}
