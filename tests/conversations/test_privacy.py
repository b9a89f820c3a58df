"""Data deletion and erasure (issue 16 §6): Meta's signed data-deletion callback and its public
status page, a lead's export and erasure (org-scoped, audited), and an erasure that is
idempotent and survives a worker killed mid-way. Leads are built from real signed webhooks."""

import base64
import copy
import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditLog
from tests.factories import MembershipFactory, OutboundMessageFactory, PhoneNumberFactory
from tests.ingest_support import deliver
from tests.meta import change_value, load
from tests.support import staff_client
from whatsapp.backoffice.support import SUPPORT_GROUP, support_group_ensure
from whatsapp.conversations import privacy
from whatsapp.core import jobs
from whatsapp.models import (
    Contact,
    ContactIdentity,
    ErasureRequest,
    Message,
    MessageMedia,
    MessageStatus,
    OutboundEvent,
    OutboundMessage,
    WebhookLog,
)

pytestmark = pytest.mark.django_db
CALLBACK = "/api/v1/meta/data-deletion"
PHONE_ID = "304000000000101"
LEAD_PHONE, LEAD_BSUID = "5511987654321", "BR.7460193528461029384"
SENT_WAMID = "wamid.GA1PVVQtQS0wMDAxFQIAEhgUT1VULUEtMDAwMQ=="


# --- Meta's data-deletion callback --------------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_request(payload: dict, secret: str) -> str:
    """Meta's format, computed here from its definition: base64url(HMAC-SHA256(secret, the
    base64url payload part)) + "." + base64url(JSON payload)."""
    body = b64url(json.dumps(payload).encode())
    return b64url(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()) + "." + body


def meta_payload(**extra) -> dict:
    now = int(time.time())
    return {"algorithm": "HMAC-SHA256", "expires": now + 3600, "issued_at": now,
            "user_id": "10231450981234567", **extra}


def test_signed_request_test_vector_is_accepted_and_followed_on_a_status_page(
        client, settings, broker, django_capture_on_commit_callbacks):
    value = signed_request(meta_payload(), settings.META_APP_SECRET)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(CALLBACK, {"signed_request": value})
    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"url", "confirmation_code"}
    code = answer["confirmation_code"]
    assert answer["url"] == f"http://testserver/privacidade/exclusao/{code}"
    erasure = ErasureRequest.objects.get(confirmation_code=code)
    # Only a hash of Meta's user id is kept on the request once it is done.
    assert erasure.subject_sha256 == hashlib.sha256(b"10231450981234567").hexdigest()
    assert broker.of("erase_data") == [(erasure.pk,)]
    assert AuditLog.objects.filter(action=AuditLog.Action.DATA_DELETION_REQUESTED).count() == 1

    page = client.get(answer["url"])
    assert page.status_code == 200
    text = page.content.decode()
    assert "Solicitação de exclusão de dados" in text and code in text
    assert 'data-state="pending"' in text and "/privacidade#exclusao" in text

    assert privacy.erasure_run(erasure.pk) == "done"
    erasure.refresh_from_db()
    assert erasure.subject == {} and erasure.result["records_keyed_by_user"] == 0
    text = client.get(answer["url"]).content.decode()
    assert 'data-state="done"' in text and "Concluída em" in text


@pytest.mark.parametrize("tamper", [
    "payload", "signature", "other_secret", "sha1_algorithm", "no_user", "missing", "garbage",
])
def test_a_bad_signed_request_is_refused_and_changes_nothing(client, settings, broker, tamper):
    secret = settings.META_APP_SECRET
    good = signed_request(meta_payload(), secret)
    sig, body = good.split(".")
    values = {
        "payload": sig + "." + b64url(json.dumps(meta_payload(user_id="999")).encode()),
        "signature": b64url(b"\x00" * 32) + "." + body,
        "other_secret": signed_request(meta_payload(), "not-our-secret"),
        "sha1_algorithm": signed_request(meta_payload(algorithm="HMAC-SHA1"), secret),
        "no_user": signed_request({"algorithm": "HMAC-SHA256", "issued_at": 1}, secret),
        "missing": None,
        "garbage": "not.a.signed.request",
    }
    audits = AuditLog.objects.count()
    data = {} if values[tamper] is None else {"signed_request": values[tamper]}
    response = client.post(CALLBACK, data)
    assert response.status_code == 400
    assert response.json() == {"error": "signed_request inválido ou ausente."}
    assert ErasureRequest.objects.count() == 0 and AuditLog.objects.count() == audits
    assert broker.published == []


def test_privacy_policy_explains_deletion_in_portuguese(client, settings):
    settings.PRIVACY_CONTACT_EMAIL = "privacidade@example.com"
    page = client.get("/privacidade")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Como excluir seus dados" in text and "solicitação de exclusão" in text
    assert "mailto:privacidade@example.com" in text
    assert client.get("/privacidade/exclusao/nao-existe").status_code == 404


# --- A lead's export and erasure ----------------------------------------------------------------
@pytest.fixture
def lead(client, org):
    """Mariana (the fixtures' lead) wrote to the org's number; we answered; Meta said sent and
    delivered. Another lead wrote too (must survive her erasure)."""
    number = PhoneNumberFactory(connection__organization=org, phone_number_id=PHONE_ID,
                                connection__waba_id="102000000000101")
    deliver(client, load("messages_text_inbound.json"))
    other = copy.deepcopy(load("messages_text_inbound.json"))
    value = change_value(other)
    value["contacts"][0].update(wa_id="5511911112222", user_id="BR.1111111111111111111")
    value["messages"][0].update(**{"from": "5511911112222", "from_user_id":
                                   "BR.1111111111111111111", "id": "wamid.OTHER"})
    deliver(client, other)
    contact = Contact.objects.get(organization=org, user_id=LEAD_BSUID)
    send = OutboundMessageFactory(config=number, contact=contact, to=LEAD_PHONE,
                                  text="Está disponível sim!", wamid=SENT_WAMID,
                                  status=OutboundMessage.Status.ACCEPTED)
    OutboundEvent.objects.create(message=send, event="queued")
    deliver(client, load("messages_status_sent.json"))
    deliver(client, load("messages_status_delivered.json"))
    return contact


def export_url(contact_id) -> str:
    return f"/api/v1/whatsapp/contacts/{contact_id}/export"


def erase_url(contact_id) -> str:
    return f"/api/v1/whatsapp/contacts/{contact_id}/erase"


def test_admin_exports_a_lead_as_a_json_download(api, lead):
    response = api.get(export_url(lead.pk))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="lead-{lead.pk}.json"'
    data = json.loads(response.content)
    assert data["contact"]["phone"] == LEAD_PHONE and data["contact"]["userId"] == LEAD_BSUID
    assert {(i["kind"], i["value"]) for i in data["identities"]} == {
        ("user_id", LEAD_BSUID), ("phone", LEAD_PHONE)}
    [message] = data["messages"]
    assert message["text"].startswith("Olá! Vi o anúncio")
    [sent] = data["outboundMessages"]
    assert sent["text"] == "Está disponível sim!" and sent["status"] == "delivered"
    entry = AuditLog.objects.get(action=AuditLog.Action.CONTACT_EXPORTED)
    assert entry.target == f"contact:{lead.pk}" and entry.organization == lead.organization


def test_another_organizations_admin_gets_404_and_members_403(client, lead, broker):
    outsider = MembershipFactory(role="admin")
    client.force_login(outsider.user)
    assert client.get(export_url(lead.pk)).status_code == 404
    assert client.post(erase_url(lead.pk)).status_code == 404
    assert client.post(erase_url(2**63)).status_code == 404
    member = MembershipFactory(organization=lead.organization, role="member")
    client.force_login(member.user)
    assert client.get(export_url(lead.pk)).status_code == 403
    assert client.post(erase_url(lead.pk)).status_code == 403
    assert ErasureRequest.objects.count() == 0 and broker.of("erase_data") == []
    assert not AuditLog.objects.filter(action__startswith="CONTACT_").exists()


def assert_lead_erased(contact_id: int) -> None:
    assert not Contact.objects.filter(pk=contact_id).exists()
    assert not ContactIdentity.objects.filter(value__in=[LEAD_PHONE, LEAD_BSUID]).exists()
    assert not Message.objects.filter(contact_id=contact_id).exists()
    assert not MessageStatus.objects.filter(wamid=SENT_WAMID).exists()
    send = OutboundMessage.objects.get(wamid=SENT_WAMID)
    assert (send.to, send.text, send.contact_id, send.payload) == ("", "", None, None)
    assert send.pricing_category == "service"  # the usage report still counts it
    assert not send.events.exists()
    for log in WebhookLog.objects.all():
        body = bytes(log.raw_body) if log.raw_body is not None else b""
        assert LEAD_PHONE.encode() not in body and LEAD_BSUID.encode() not in body


def test_erasure_removes_the_lead_everywhere_and_is_idempotent(
        api, lead, broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(erase_url(lead.pk))
    assert response.status_code == 202
    erasure = ErasureRequest.objects.get(pk=response.json()["erasure"]["id"])
    assert response.json()["erasure"]["state"] == "pending"
    assert broker.of("erase_data") == [(erasure.pk,)]
    # Asked twice while it waits: the same request, not a second one.
    assert api.post(erase_url(lead.pk)).json()["erasure"]["id"] == erasure.pk

    assert privacy.erasure_run(erasure.pk) == "done"
    assert_lead_erased(lead.pk)
    erasure.refresh_from_db()
    assert erasure.state == "done" and erasure.subject == {}
    assert erasure.result["contacts"] == 1 and erasure.result["webhook_bodies"] == 3
    # The other lead and the delivery that only mentions her are untouched.
    assert Contact.objects.filter(user_id="BR.1111111111111111111").exists()
    assert WebhookLog.objects.filter(raw_body__isnull=False).count() == 1
    entry = AuditLog.objects.get(action=AuditLog.Action.CONTACT_ERASED)
    assert entry.target == f"contact:{lead.pk}" and LEAD_PHONE not in json.dumps(entry.metadata)

    # A redelivered task finds it done and changes nothing; the lead is gone for the API.
    assert privacy.erasure_run(erasure.pk) == "done"
    assert api.post(erase_url(lead.pk)).status_code == 404
    assert AuditLog.objects.filter(action=AuditLog.Action.CONTACT_ERASED).count() == 1


def stored_photo(contact: Contact, wamid: str) -> MessageMedia:
    """A photo the contact sent, copied into our media storage as the media worker does."""
    from django.core.files.base import ContentFile

    from whatsapp.conversations.media import media_storage

    message = Message.objects.create(
        organization=contact.organization, config=Message.objects.filter(
            organization=contact.organization).first().config, contact=contact, wamid=wamid,
        direction=Message.Direction.INBOUND, type="image", timestamp=timezone.now(),
        media_id=f"m-{wamid}")
    name = media_storage().save(f"{contact.organization_id}/{wamid}.jpg",
                                ContentFile(b"\xff\xd8\xff photo of " + wamid.encode()))
    return MessageMedia.objects.create(organization=contact.organization, message=message,
                                       media_id=message.media_id, file=name,
                                       status=MessageMedia.Status.STORED, mime_type="image/jpeg")


def test_erasure_deletes_the_leads_media_files_from_the_storage(lead, settings, tmp_path):
    from whatsapp.conversations.media import media_storage

    settings.MEDIA_ROOT = str(tmp_path)
    hers = stored_photo(lead, "wamid.PHOTO_HERS")
    other = stored_photo(Contact.objects.get(user_id="BR.1111111111111111111"),
                         "wamid.PHOTO_OTHER")
    erasure = privacy.erasure_request(lead, user=lead.organization.memberships.first().user)

    assert privacy.erasure_run(erasure.pk) == "done"

    storage = media_storage()
    assert not storage.exists(hers.file)
    assert not MessageMedia.objects.filter(pk=hers.pk).exists()
    assert storage.exists(other.file)  # the other lead's photo stays
    erasure.refresh_from_db()
    assert erasure.result["media_files"] == 1


def test_an_erasure_killed_midway_is_resumed_by_the_sweep(api, lead, broker, monkeypatch,
                                                          settings):
    erasure = privacy.erasure_request(lead, user=lead.organization.memberships.first().user)

    def killed(*args, **kwargs):
        raise SystemExit("worker killed")  # not an Exception: nothing catches it, like a kill

    purge = privacy._bodies_purge
    monkeypatch.setattr(privacy, "_bodies_purge", killed)
    with pytest.raises(SystemExit):
        privacy.erasure_run(erasure.pk)
    erasure.refresh_from_db()
    assert erasure.state == "running" and erasure.attempts == 1
    # Its work was one transaction: nothing half-erased is left behind.
    assert Contact.objects.filter(pk=lead.pk).exists()
    assert Message.objects.filter(contact=lead).exists()
    assert OutboundMessage.objects.get(wamid=SENT_WAMID).text == "Está disponível sim!"

    # A second delivery of the task while the lease holds does nothing.
    monkeypatch.setattr(privacy, "_bodies_purge", purge)
    assert privacy.erasure_run(erasure.pk) == "running"
    broker.clear()
    assert privacy.erasures_sweep() == 0  # the lease has not run out
    later = timezone.now() + timedelta(seconds=settings.WHATSAPP_ERASURE_LEASE_SECONDS + 1)
    assert privacy.erasures_sweep(now=later) == 1
    assert broker.of("erase_data") == [(erasure.pk,)]
    ErasureRequest.objects.filter(pk=erasure.pk).update(locked_until=timezone.now())
    assert privacy.erasure_run(erasure.pk) == "done"
    assert_lead_erased(lead.pk)
    erasure.refresh_from_db()
    assert erasure.attempts == 2 and erasure.state == "done"


def test_support_exports_and_erases_a_lead_from_the_admin(client, lead, broker,
                                                          django_capture_on_commit_callbacks):
    support_group_ensure()
    support = staff_client(group=SUPPORT_GROUP)
    changelist = "/admin/whatsapp/contact/"
    exported = support.post(changelist, {"action": "export_selected",
                                         "_selected_action": [lead.pk]})
    assert exported.status_code == 200
    assert json.loads(exported.content)[0]["contact"]["userId"] == LEAD_BSUID
    with django_capture_on_commit_callbacks(execute=True):
        erased = support.post(changelist, {"action": "erase_selected",
                                           "_selected_action": [lead.pk]}, follow=True)
    assert "1 lead agendado para exclusão" in erased.content.decode()
    erasure = ErasureRequest.objects.get(contact_id=lead.pk)
    assert broker.of("erase_data") == [(erasure.pk,)]
    entry = AuditLog.objects.get(action=AuditLog.Action.CONTACT_ERASURE_REQUESTED)
    assert entry.actor == erasure.requested_by and entry.actor.is_staff
    # The erase task survives a killed worker: the broker keeps it until it finished.
    assert jobs.task("erase_data").acks_late is True
