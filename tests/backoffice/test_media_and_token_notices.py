"""Two read-only screens for support: messages' media (where each download stands, with one
action, trying a failed download again) and the token expiry e-mails sent to organizations."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditLog
from tests.factories import ConnectionFactory, OrganizationFactory, PhoneNumberFactory, UserFactory
from whatsapp.models import Message, MessageMedia, TokenExpiryNotice

pytestmark = pytest.mark.django_db

MEDIA = "/admin/whatsapp/messagemedia/"
NOTICES = "/admin/whatsapp/tokenexpirynotice/"


def media(org, wamid: str, status=MessageMedia.Status.FAILED, **fields) -> MessageMedia:
    number = PhoneNumberFactory(connection=ConnectionFactory(organization=org),
                                display_phone_number="5511940009876")
    message = Message.objects.create(organization=org, config=number, wamid=wamid,
                                     direction=Message.Direction.INBOUND, type="image",
                                     timestamp=timezone.now(), media_id=f"m-{wamid}")
    return MessageMedia.objects.create(organization=org, message=message,
                                       media_id=message.media_id, status=status, **fields)


def act(client, action: str, *rows):
    return client.post(MEDIA, {"action": action, "_selected_action": [str(r.pk) for r in rows]},
                       follow=True)


def test_support_lists_media_with_download_state_in_portuguese(support, org):
    failed = media(org, "wamid.FAILED1", attempts=5,
                   error="Graph error None (HTTP 503): Service Unavailable")
    stored = media(OrganizationFactory(), "wamid.STORED1", status=MessageMedia.Status.STORED,
                   file="7/2026/12/0123abcd.jpg", mime_type="image/jpeg", size=48213,
                   stored_at=timezone.now())

    html = support.get(MEDIA).content.decode()
    assert "wamid.FAILED1" in html and "wamid.STORED1" in html
    assert "Não foi possível baixar" in html and "Armazenada" in html  # the status, in words
    assert "HTTP 503" in html and "5511940009876" in html and org.name in html
    assert "Imagem" in html and "image/jpeg" in html
    # The file's storage name is not shown, on the list or the row's page.
    page = support.get(f"{MEDIA}{stored.pk}/change/").content.decode()
    assert "0123abcd" not in html + page and "wamid.STORED1" in page

    only_failed = support.get(MEDIA, {"status__exact": "failed"}).content.decode()
    assert "wamid.FAILED1" in only_failed and "wamid.STORED1" not in only_failed
    by_org = support.get(MEDIA, {"organization__id__exact": str(org.pk)}).content.decode()
    assert "wamid.FAILED1" in by_org and "wamid.STORED1" not in by_org
    found = support.get(MEDIA, {"q": "wamid.STORED1"}).content.decode()
    assert "wamid.STORED1" in found and failed.message.wamid not in found


def test_support_cannot_add_edit_or_delete_media(support, org):
    row = media(org, "wamid.RO")
    assert support.get(f"{MEDIA}add/").status_code == 403
    support.post(f"{MEDIA}{row.pk}/change/", {"error": "forged", "status": "stored"})
    assert support.post(f"{MEDIA}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    row.refresh_from_db()
    assert (row.status, row.error) == (MessageMedia.Status.FAILED, "")


def test_support_tries_a_failed_download_again_audited(support, org, broker,
                                                       django_capture_on_commit_callbacks):
    failed = media(org, "wamid.RETRY", attempts=5, error="no access token for this number")
    rejected = media(org, "wamid.REJ", status=MessageMedia.Status.REJECTED,
                     error="type application/x-msdownload is not allowed")

    with django_capture_on_commit_callbacks(execute=True):
        response = act(support, "retry_selected", failed, rejected)

    body = response.content.decode()
    assert "1 download de mídia na fila de novo." in body
    assert "1 mídia não foi tentada de novo. Só um download que falhou" in body
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.error) == (MessageMedia.Status.PENDING, 0, "")
    assert MessageMedia.objects.get(pk=rejected.pk).status == MessageMedia.Status.REJECTED
    assert broker.of("fetch_media") == [(failed.message_id,)]
    entry = AuditLog.objects.get(action=AuditLog.Action.MEDIA_FETCH_RETRIED)
    assert (entry.actor, entry.organization, entry.target) == (
        support.user, org, "message:wamid.RETRY")
    assert entry.metadata == {"media": failed.pk, "error": "no access token for this number"}


def test_retrying_from_the_list_filtered_on_failed_reports_only_what_was_queued(
        support, org, broker, django_capture_on_commit_callbacks):
    rows = [media(org, f"wamid.F{i}", attempts=5, error="HTTP 503") for i in range(3)]

    with django_capture_on_commit_callbacks(execute=True):
        response = support.post(f"{MEDIA}?status__exact=failed", {
            "action": "retry_selected", "_selected_action": [str(r.pk) for r in rows]},
            follow=True)

    body = response.content.decode()
    assert "3 downloads de mídia na fila de novo." in body
    assert "tentada" not in body  # no "not retried" warning (it once read -3)
    assert sorted(broker.of("fetch_media")) == sorted((r.message_id,) for r in rows)


def test_staff_without_the_support_group_sees_neither_screen_nor_retries(client, org, broker):
    row = media(org, "wamid.NOPE")
    client.force_login(UserFactory(is_staff=True))
    assert client.get(MEDIA).status_code == 403
    assert client.get(NOTICES).status_code == 403
    act(client, "retry_selected", row)
    assert MessageMedia.objects.get(pk=row.pk).status == MessageMedia.Status.FAILED
    assert broker.of("fetch_media") == []


def test_support_sees_who_was_warned_of_a_token_expiry_never_the_token(support, org):
    connection = ConnectionFactory(organization=org, with_token=True, token="EAAG-notice-secret")
    PhoneNumberFactory(connection=connection, display_phone_number="5511940005555")
    expires = timezone.now() + timedelta(days=6)
    notice = TokenExpiryNotice.objects.create(connection=connection, threshold_days=7,
                                              token_expires_at=expires, recipients=2)
    other = ConnectionFactory()
    TokenExpiryNotice.objects.create(connection=other, threshold_days=30,
                                     token_expires_at=expires, recipients=1)

    pages = {url: support.get(url) for url in [
        NOTICES, f"{NOTICES}{notice.pk}/change/",
        f"/admin/whatsapp/connection/{connection.pk}/change/"]}
    for url, response in pages.items():
        assert response.status_code == 200, url
        html = response.content.decode()
        assert "EAAG-notice-secret" not in html
        assert connection.access_token_encrypted not in html
    listed = pages[NOTICES].content.decode()
    assert org.name in listed and connection.waba_id in listed and "5511940005555" in listed
    assert "Avisos de expiração do token" in listed
    # The connection's page lists the e-mails sent about its token.
    assert "Avisos de expiração do token" in pages[
        f"/admin/whatsapp/connection/{connection.pk}/change/"].content.decode()

    assert other.waba_id in listed
    for query in [{"connection__organization__id__exact": str(org.pk)},
                  {"threshold_days": "7"}]:
        html = support.get(NOTICES, query).content.decode()
        assert connection.waba_id in html and other.waba_id not in html, query


def test_support_cannot_add_edit_or_delete_token_expiry_notices(support, org):
    notice = TokenExpiryNotice.objects.create(
        connection=ConnectionFactory(organization=org), threshold_days=7,
        token_expires_at=timezone.now() + timedelta(days=6), recipients=2)
    assert support.get(f"{NOTICES}add/").status_code == 403
    support.post(f"{NOTICES}{notice.pk}/change/", {"recipients": "99"})
    assert support.post(f"{NOTICES}{notice.pk}/delete/", {"post": "yes"}).status_code == 403
    assert TokenExpiryNotice.objects.get(pk=notice.pk).recipients == 2
