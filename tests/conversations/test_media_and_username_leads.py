"""Media and username-only leads through the Meta sandbox over real HTTP (live server):
the sandbox posts signed webhooks to the product, Graph serves media behind expiring urls,
and a contact-information request comes back as the lead's own number."""

import json
from unittest import mock

import pytest
from django.core import signing

from organizations.models import ApiToken
from sandbox.models import SentMessage
from tests.factories import MembershipFactory
from tests.ingest_support import deliver
from tests.sandbox.conftest import wait_for
from whatsapp.conversations.media import media_fetch, media_purge
from whatsapp.models import Contact, Message, MessageMedia, OutboundMessage, WebhookLog
from whatsapp.sending.worker import outbound_send
from whatsapp.webhooks.process import webhook_process

pytestmark = pytest.mark.django_db(transaction=True)
# The sandbox as Meta and a tenant connected to one of its numbers, sending enabled.
API = "/api/v1/whatsapp"


def process_new(marker: bytes, count: int = 1) -> list[WebhookLog]:
    """Waits for `count` stored deliveries containing `marker`, and processes them."""
    def probe():
        rows = [r for r in WebhookLog.objects.filter(status=WebhookLog.Status.RECEIVED)
                .order_by("id") if marker in bytes(r.raw_body)]
        return rows if len(rows) >= count else None
    rows = wait_for(probe, message=f"{count} deliveries with {marker!r}")
    for row in rows:
        assert webhook_process(row.pk) == "processed"
    return rows


def get(client, url: str, bearer: str, **params):
    return client.get(url, params, HTTP_AUTHORIZATION=bearer)


def test_sandbox_media_is_stored_and_served_only_to_its_tenant(client, meta, tenant, settings):
    phone = tenant["config"].phone_number_id
    assert meta.api("POST", "events", json={"kind": "image", "phone_number_id": phone}
                    ).status_code == 202
    process_new(b'"image"')
    message = Message.objects.get(type="image")
    media = MessageMedia.objects.get(message=message)
    assert (media.status, media.organization_id) == ("pending", tenant["org"].pk)

    assert media_fetch(message.pk).status == "stored"
    media.refresh_from_db()
    assert media.mime_type == "image/jpeg" and media.size > 0 and media.file
    assert media_fetch(message.pk).status == "skipped"  # once

    contact = message.contact
    body = get(client, f"{API}/contacts/{contact.pk}/messages", tenant["bearer"]).json()
    item = body["messages"][0]
    assert item["media"]["status"] == "stored" and item["mediaUrl"]
    served = client.get(item["mediaUrl"], HTTP_AUTHORIZATION=tenant["bearer"])
    assert served.status_code == 200 and served["Content-Type"] == "image/jpeg"
    content = b"".join(served.streaming_content)
    token = tenant["config"].connection.get_access_token()
    sandbox_bytes = meta.graph("GET", message.media_id, token=token).json()
    assert len(content) == sandbox_bytes["file_size"]
    assert content.startswith(b"\xff\xd8\xff")

    # Another organization: its own valid token, but not its media.
    other = MembershipFactory()
    _, raw = ApiToken.issue(user=other.user, organization=other.organization)
    assert client.get(item["mediaUrl"], HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 404
    assert get(client, f"{API}/contacts/{contact.pk}/messages",
               f"Bearer {raw}").status_code == 404
    # No token at all.
    assert client.get(item["mediaUrl"]).status_code in (401, 403)
    # A tampered link, then an expired one.
    assert client.get(item["mediaUrl"][:-2] + "xx",
                      HTTP_AUTHORIZATION=tenant["bearer"]).status_code == 403
    later = signing.time.time() + settings.WHATSAPP_MEDIA_LINK_TTL_SECONDS + 5
    with mock.patch("django.core.signing.time.time", return_value=later):
        expired = client.get(item["mediaUrl"], HTTP_AUTHORIZATION=tenant["bearer"])
    assert expired.status_code == 410 and "expirou" in expired.json()["error"]

    # Retention: the file goes, the link answers 410, the message stays.
    settings.WHATSAPP_MEDIA_RETENTION_DAYS = 0
    assert media_purge() == 1
    media.refresh_from_db()
    assert (media.status, media.file) == ("deleted", "")
    fresh = get(client, f"{API}/contacts/{contact.pk}/messages", tenant["bearer"]).json()
    assert fresh["messages"][0]["mediaUrl"] is None
    assert client.get(item["mediaUrl"], HTTP_AUTHORIZATION=tenant["bearer"]).status_code == 410


def test_media_of_a_disallowed_type_is_rejected_and_not_stored(client, meta, tenant, settings):
    settings.WHATSAPP_MEDIA_ALLOWED_TYPES = ["application/pdf"]
    meta.api("POST", "events", json={"kind": "image",
                                     "phone_number_id": tenant["config"].phone_number_id})
    process_new(b'"image"')
    message = Message.objects.get(type="image")
    assert media_fetch(message.pk).status == "rejected"
    assert MessageMedia.objects.get(message=message).file == ""


def test_transient_graph_error_is_retried_then_stored(client, meta, tenant):
    meta.api("POST", "events", json={"kind": "image",
                                     "phone_number_id": tenant["config"].phone_number_id})
    process_new(b'"image"')
    message = Message.objects.get(type="image")
    meta.api("POST", "faults", json={"path": message.media_id, "method": "GET", "status": 503,
                                     "code": 2, "times": 1})
    first = media_fetch(message.pk)
    assert first.status == "retry" and first.retry_in > 0
    assert media_fetch(message.pk).status == "stored"


def test_username_only_lead_is_answered_then_shares_its_phone(client, meta, tenant):
    phone = tenant["config"].phone_number_id
    meta.api("POST", "events", json={"kind": "text_username", "phone_number_id": phone})
    process_new(b"carla.imoveis")
    contact = Contact.objects.get(organization=tenant["org"])
    assert (contact.wa_id, contact.username) == ("", "carla.imoveis")
    bsuid = contact.user_id
    assert bsuid.startswith("BR.")

    # Answered through the BSUID: Graph's body has `recipient`, not `to`.
    response = client.post(f"{API}/messages", {"type": "text", "contactId": contact.pk,
                                               "text": "O condomínio é R$ 650."},
                           content_type="application/json",
                           HTTP_AUTHORIZATION=tenant["bearer"])
    assert response.status_code == 202, response.json()
    answer = OutboundMessage.objects.get(pk=response.json()["message"]["id"])
    assert outbound_send(answer.pk).status == "accepted"
    sent = SentMessage.objects.latest("created_at").payload  # the Graph request body
    assert sent["recipient"] == bsuid and "to" not in sent
    # Its statuses name the BSUID only (no recipient_id) and still find the send.
    process_new(b'"statuses"', 3)
    answer.refresh_from_db()
    assert (answer.status, answer.to, answer.recipient_user_id) == ("read", "", bsuid)

    # Ask for the phone: Meta's contact-information request, then the lead's answer.
    asked = client.post(f"{API}/contacts/{contact.pk}/request-phone", {},
                        content_type="application/json", HTTP_AUTHORIZATION=tenant["bearer"])
    assert asked.status_code == 202, asked.json()
    request_message = OutboundMessage.objects.get(pk=asked.json()["message"]["id"])
    assert outbound_send(request_message.pk).status == "accepted"
    payload = SentMessage.objects.latest("created_at").payload
    assert payload["recipient"] == bsuid and payload["type"] == "interactive"
    assert payload["interactive"]["type"] == "request_contact_info"
    assert payload["interactive"]["action"] == {"name": "request_contact_info"}
    assert "telefone" in payload["interactive"]["body"]["text"]

    process_new(b"contact_request")
    contact.refresh_from_db()
    assert contact.wa_id == "5511955550123" and contact.user_id == bsuid
    assert Contact.objects.filter(organization=tenant["org"]).count() == 1
    listed = get(client, f"{API}/contacts", tenant["bearer"]).json()["contacts"]
    kinds = {(i["kind"], i["value"]) for i in listed[0]["identities"]}
    assert kinds == {("user_id", bsuid), ("phone", "5511955550123"),
                     ("username", "carla.imoveis")}


def test_a_contact_card_shared_unasked_is_not_attached(client, meta, tenant):
    """Only origin contact_request attaches a number: a forwarded card is someone else's."""
    phone = tenant["config"].phone_number_id
    meta.api("POST", "events", json={"kind": "text_username", "phone_number_id": phone})
    row = process_new(b"carla.imoveis")[0]
    body = json.loads(bytes(row.raw_body))
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"][0].update(id="wamid.unasked", type="contacts", contacts=[{
        "name": {"formatted_name": "Outro"}, "origin": "other",
        "phones": [{"phone": "+5511911112222", "wa_id": "5511911112222"}]}])
    value["messages"][0].pop("text")
    deliver(client, body)
    assert Contact.objects.get(organization=tenant["org"]).wa_id == ""
