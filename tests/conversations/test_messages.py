"""messages, statuses, echoes, contacts, templates and quality through the real webhook URL."""

import copy

import pytest

from tests.factories import fixture_numbers
from tests.ingest_support import deliver, ts
from tests.meta import change_value, load
from whatsapp.core.phones import normalize_phone
from whatsapp.models import (
    Connection,
    Contact,
    ContactIdentity,
    Message,
    MessageStatus,
    PhoneNumber,
    TemplateStatusEvent,
    WebhookLog,
)

pytestmark = pytest.mark.django_db

WAMID_TEXT = "wamid.GA1JTi1BLTAwMDEVAgASGBRJTi1BLTAwMDE="
MARIANA = "BR.7460193528461029384"


@pytest.fixture
def numbers(db) -> dict[str, PhoneNumber]:
    return fixture_numbers()


def test_inbound_text_creates_the_lead_and_the_message(client, numbers):
    log = deliver(client, load("messages_text_inbound.json"))

    message = Message.objects.get()
    contact = Contact.objects.get()
    assert message.wamid == WAMID_TEXT
    assert message.direction == Message.Direction.INBOUND
    assert message.source == Message.Source.CLOUD_API
    assert message.type == "text"
    assert message.body.startswith("Olá! Vi o anúncio")
    assert message.timestamp == ts(1790000100)
    assert message.raw["from_user_id"] == MARIANA
    assert message.config == numbers["A"]
    assert message.organization == numbers["A"].organization
    assert message.contact == contact
    assert (contact.user_id, contact.wa_id, contact.profile_name) == (
        MARIANA, "5511987654321", "Mariana Souza")
    assert contact.organization == numbers["A"].organization
    assert contact.last_inbound_at == ts(1790000100)
    assert contact.human_takeover_at is None
    assert log.organization == numbers["A"].organization
    config = PhoneNumber.objects.get(pk=numbers["A"].pk)
    assert (config.messages_in_count, config.messages_out_count) == (1, 0)
    assert config.last_message_at == ts(1790000100)
    assert Connection.objects.get(pk=config.connection_id).last_webhook_at is not None


def test_redelivered_message_is_stored_once(client, numbers):
    body = load("messages_text_inbound.json")
    deliver(client, body)
    deliver(client, body)
    assert Message.objects.count() == 1
    assert Contact.objects.count() == 1
    assert PhoneNumber.objects.get(pk=numbers["A"].pk).messages_in_count == 1


def test_pre_bsuid_message_matches_the_same_lead_by_phone(client, numbers):
    deliver(client, load("messages_text_inbound_pre_bsuid.json"))
    contact = Contact.objects.get()
    assert (contact.user_id, contact.wa_id) == ("", "5511987654321")

    deliver(client, load("messages_text_inbound.json"))
    contact = Contact.objects.get()
    assert contact.user_id == MARIANA
    assert contact.messages.count() == 2


def test_username_user_without_phone(client, numbers):
    deliver(client, load("messages_text_inbound_username_no_phone.json"))
    contact = Contact.objects.get()
    assert contact.wa_id == ""
    assert contact.user_id == "BR.5512093847561029384"
    assert contact.username == "carla.imoveis"
    assert contact.profile_name == "Carla M."
    assert Message.objects.get().raw.get("from") is None


def test_ctwa_referral_is_kept_for_lead_attribution(client, numbers):
    deliver(client, load("messages_text_inbound_ctwa_referral.json"))
    message = Message.objects.get()
    assert message.referral["ctwa_clid"] == "ARAkExampleClickIdOnlyForTests0123456789"
    assert message.referral["source_id"] == "120000000000000001"
    contact = message.contact
    assert contact.referral["headline"] == "Fale com um corretor"
    assert contact.referral_at == ts(1790000300)
    assert contact.profile_name == "João Pereira"


def test_unsupported_131060_on_coexistence_number_is_stored_with_its_error(client, numbers):
    deliver(client, load("messages_unsupported_131060_coexistence.json"))
    message = Message.objects.get()
    assert message.type == "unsupported"
    assert message.errors[0]["code"] == 131060
    assert message.config == numbers["B"]
    assert message.contact.organization == numbers["B"].organization


def test_batched_delivery_spanning_two_numbers(client, numbers):
    log = deliver(client, load("messages_batched.json"))
    assert Message.objects.filter(config=numbers["A"]).count() == 2
    assert set(MessageStatus.objects.values_list("status", flat=True)) == {
        "read", "delivered", "sent"}
    # Mariana and João in A, Paulo in B: leads are per organization.
    assert Contact.objects.filter(organization=numbers["A"].organization).count() == 2
    assert Contact.objects.filter(organization=numbers["B"].organization).get().profile_name == (
        "Paulo Lima")
    assert log.status == WebhookLog.Status.PROCESSED


@pytest.mark.parametrize("fixture,status", [
    ("messages_status_sent.json", "sent"),
    ("messages_status_delivered.json", "delivered"),
    ("messages_status_read.json", "read"),
])
def test_status_for_a_message_we_never_stored_is_kept(client, numbers, fixture, status):
    deliver(client, load(fixture))
    record = MessageStatus.objects.get()
    assert record.status == status
    assert record.wamid == "wamid.GA1PVVQtQS0wMDAxFQIAEhgUT1VULUEtMDAwMQ=="
    assert record.recipient_user_id == MARIANA
    assert Message.objects.count() == 0
    if status != "read":
        assert record.pricing["category"] == "service"


def _outbound(config: PhoneNumber, wamid: str) -> Message:
    return Message.objects.create(
        organization=config.organization, config=config, wamid=wamid,
        direction=Message.Direction.OUTBOUND, type="text", timestamp=ts(1790000150),
    )


def test_statuses_only_move_forward_and_duplicates_are_noops(client, numbers):
    message = _outbound(numbers["A"], "wamid.GA1PVVQtQS0wMDAxFQIAEhgUT1VULUEtMDAwMQ==")
    deliver(client, load("messages_status_read.json"))
    deliver(client, load("messages_status_delivered.json"))
    deliver(client, load("messages_status_sent.json"))
    deliver(client, load("messages_status_read.json"))
    message.refresh_from_db()
    assert message.status == "read"
    assert message.status_at == ts(1790000190)
    assert MessageStatus.objects.filter(wamid=message.wamid).count() == 3


def test_failed_status_keeps_errors(client, numbers):
    message = _outbound(numbers["A"], "wamid.GA1PVVQtQS0wMDAzFQIAEhgUT1VULUEtMDAwMw==")
    deliver(client, load("messages_status_failed.json"))
    message.refresh_from_db()
    assert message.status == "failed"
    assert message.errors[0]["code"] == 131049
    assert MessageStatus.objects.get().errors[0]["code"] == 131049


def test_one_delivery_with_statuses_for_several_messages_sets_each_its_own(client, numbers):
    """Meta batches statuses: each message gets its own status, time and errors."""
    wamids = [f"wamid.BATCH{i}" for i in range(4)]
    messages = [_outbound(numbers["A"], w) for w in wamids]
    Message.objects.filter(wamid=wamids[3]).update(status="read")
    body = load("messages_status_failed.json")
    value = change_value(body)
    template = value["statuses"][0]
    value["statuses"] = [
        {**template, "id": wamids[0], "status": "failed", "timestamp": "1790000201",
         "errors": [{**template["errors"][0], "code": 131049}]},
        {**template, "id": wamids[1], "status": "failed", "timestamp": "1790000202",
         "errors": [{**template["errors"][0], "code": 131026}]},
        {**{k: v for k, v in template.items() if k != "errors"}, "id": wamids[2],
         "status": "delivered", "timestamp": "1790000203"},
        {**{k: v for k, v in template.items() if k != "errors"}, "id": wamids[3],
         "status": "delivered", "timestamp": "1790000204"},
    ]
    deliver(client, body)
    for m in messages:
        m.refresh_from_db()
    assert [(m.status, m.status_at) for m in messages] == [
        ("failed", ts(1790000201)), ("failed", ts(1790000202)),
        ("delivered", ts(1790000203)), ("read", None)]
    assert [m.errors[0]["code"] for m in messages[:2]] == [131049, 131026]
    assert messages[2].errors == []


def test_status_before_its_message_is_applied_when_the_message_arrives(client, numbers):
    deliver(client, load("messages_status_read.json"))
    message = _outbound(numbers["A"], "wamid.GA1PVVQtQS0wMDAxFQIAEhgUT1VULUEtMDAwMQ==")
    from whatsapp.conversations.messages import apply_stored_statuses

    apply_stored_statuses([message.wamid])
    message.refresh_from_db()
    assert message.status == "read"


def test_v23_status_keeps_conversation_pricing_and_callback_data(client, numbers):
    deliver(client, load("messages_status_sent_template_marketing_v23_with_conversation.json"))
    record = MessageStatus.objects.get()
    assert record.conversation["origin"]["type"] == "marketing"
    assert record.pricing["category"] == "marketing"
    assert record.biz_opaque_callback_data == "tenant=imob-42;lead=9812"


def test_echo_is_outbound_from_the_phone_app_and_marks_human_takeover(client, numbers):
    deliver(client, load("smb_message_echoes_text.json"))
    message = Message.objects.get()
    assert message.direction == Message.Direction.OUTBOUND
    assert message.source == Message.Source.PHONE_APP
    assert message.body.startswith("Oi Mariana")
    contact = message.contact
    assert contact.user_id == MARIANA
    assert contact.human_takeover_at == ts(1790001200)
    # Echoes never open the customer-service window.
    assert contact.last_inbound_at is None
    config = PhoneNumber.objects.get(pk=numbers["B"].pk)
    assert (config.messages_in_count, config.messages_out_count) == (0, 1)


@pytest.mark.parametrize("order", [("text", "revoke"), ("revoke", "text")])
def test_echo_revoke_marks_the_original_in_either_order(client, numbers, order):
    for name in order:
        deliver(client, load(f"smb_message_echoes_{name}.json"))
    original = Message.objects.get(wamid="wamid.GA1FQ0hPLUItMDAwMRUCABIYFEVDSE8tQi0wMDAx")
    assert original.revoked_at == ts(1790001300)
    revoke = Message.objects.get(type="revoke")
    assert revoke.target_wamid == original.wamid
    assert revoke.source == Message.Source.PHONE_APP


def test_echo_pre_bsuid_matches_by_phone(client, numbers):
    deliver(client, load("smb_message_echoes_pre_bsuid.json"))
    contact = Message.objects.get().contact
    assert (contact.user_id, contact.wa_id) == ("", "5511987654321")
    assert contact.human_takeover_at == ts(1777040000)


def _edit(original: str, wamid: str, text: str, when: int) -> dict:
    body = load("messages_text_inbound.json")
    item = change_value(body)["messages"][0]
    item.update(id=wamid, timestamp=str(when), type="edit",
                edit={"original_message_id": original,
                      "message": {"type": "text", "text": {"body": text}}})
    del item["text"]
    return body


@pytest.mark.parametrize("edit_first", [False, True])
def test_inbound_edit_updates_the_original_text(client, numbers, edit_first):
    edit = _edit(WAMID_TEXT, "wamid.EDIT1", "Ainda disponível? (editado)", 1790000150)
    bodies = [load("messages_text_inbound.json"), edit]
    for body in reversed(bodies) if edit_first else bodies:
        deliver(client, body)
    original = Message.objects.get(wamid=WAMID_TEXT)
    assert original.body == "Ainda disponível? (editado)"
    assert original.edited_at == ts(1790000150)
    assert original.raw["text"]["body"].startswith("Olá!")
    assert PhoneNumber.objects.get(pk=numbers["A"].pk).messages_in_count == 1


@pytest.mark.parametrize("type_,content,body,media_id", [
    ("image", {"id": "111", "mime_type": "image/jpeg", "caption": "Fachada"}, "Fachada", "111"),
    ("audio", {"id": "222", "mime_type": "audio/ogg", "voice": True}, "", "222"),
    ("video", {"id": "333", "mime_type": "video/mp4"}, "", "333"),
    ("document", {"id": "444", "filename": "contrato.pdf"}, "contrato.pdf", "444"),
    ("sticker", {"id": "555", "animated": False}, "", "555"),
    ("location", {"latitude": -23.58, "longitude": -46.63, "name": "Stand de vendas"},
     "Stand de vendas", ""),
    ("interactive", {"type": "button_reply", "button_reply": {"id": "v", "title": "Agendar"}},
     "Agendar", ""),
    ("button", {"payload": "SIM", "text": "Sim, quero"}, "Sim, quero", ""),
    ("reaction", {"message_id": "wamid.OUT", "emoji": "\U0001f44d"}, "\U0001f44d", ""),
])
def test_every_inbound_type(client, numbers, type_, content, body, media_id):
    payload = load("messages_text_inbound.json")
    item = change_value(payload)["messages"][0]
    del item["text"]
    item.update(type=type_, **{type_: content}, context={"from": "5511940001234",
                                                         "id": "wamid.PREV"})
    deliver(client, payload)
    message = Message.objects.get()
    assert (message.type, message.body, message.media_id) == (type_, body, media_id)
    assert message.reply_to_wamid == "wamid.PREV"
    if type_ == "reaction":
        assert message.target_wamid == "wamid.OUT"


def test_shared_contacts_message(client, numbers):
    payload = load("messages_text_inbound.json")
    item = change_value(payload)["messages"][0]
    del item["text"]
    item.update(type="contacts", contacts=[{"name": {"formatted_name": "Ana Corretora"},
                                            "phones": [{"phone": "+55 11 91234-5678"}]}])
    deliver(client, payload)
    assert Message.objects.get().body == "Ana Corretora"


def test_state_sync_add_then_remove(client, numbers):
    deliver(client, load("smb_app_state_sync_add.json"))
    org = numbers["B"].organization
    paulo = Contact.objects.get(organization=org, user_id="BR.8831207745519902641")
    assert (paulo.saved_name, paulo.in_address_book) == ("Paulo Lima", True)
    assert Contact.objects.get(organization=org, user_id=MARIANA).saved_name == (
        "Mariana Souza (Vila Mariana)")

    deliver(client, load("smb_app_state_sync_remove.json"))
    paulo.refresh_from_db()
    assert (paulo.saved_name, paulo.in_address_book) == ("", False)
    assert paulo.address_book_at == ts(1790086400)
    # An older "add" redelivered later does not bring the removed contact back.
    deliver(client, load("smb_app_state_sync_add.json"))
    paulo.refresh_from_db()
    assert paulo.in_address_book is False


@pytest.mark.parametrize("update_first", [False, True])
def test_user_id_update_moves_the_identity_and_keeps_the_conversation(client, numbers,
                                                                       update_first):
    bodies = [load("messages_text_inbound.json"), load("user_id_update.json")]
    for body in reversed(bodies) if update_first else bodies:
        deliver(client, body)
    contact = Contact.objects.get()
    assert contact.user_id == "BR.9901827364550011223"
    assert contact.wa_id == "5511987654321"
    assert contact.messages.count() == 1
    old = ContactIdentity.objects.get(value=MARIANA)
    assert old.contact == contact and old.superseded_at == ts(1790259200)

    # A late message still carrying the old BSUID lands on the same lead.
    deliver(client, load("messages_batched.json"))
    assert Contact.objects.filter(organization=numbers["A"].organization).count() == 2
    assert Contact.objects.get(user_id="BR.9901827364550011223").messages.count() == 2


MARIANA_NEW = "BR.9901827364550011223"
CARLA, CARLA_NEW = "BR.5512093847561029384", "BR.8834019275561038472"


def late_message(fixture: str, wamid: str) -> dict:
    """The fixture's inbound message again under a new wamid (still the old ids), later."""
    payload = load(fixture)
    item = change_value(payload)["messages"][0]
    item.update(id=wamid, timestamp="1790400000")
    return payload


@pytest.mark.parametrize("system_first", [False, True])
def test_user_changed_number_moves_phone_and_bsuid_and_keeps_the_conversation(
        client, numbers, system_first):
    bodies = [load("messages_text_inbound.json"),
              load("messages_system_user_changed_number.json")]
    for body in reversed(bodies) if system_first else bodies:
        deliver(client, body)

    contact = Contact.objects.get()
    assert (contact.user_id, contact.wa_id) == (MARIANA_NEW, "5511912345678")
    identities = {(i.kind, i.value): i.superseded_at for i in contact.identities.all()}
    assert identities == {("user_id", MARIANA): ts(1790259200), ("user_id", MARIANA_NEW): None,
                          ("phone", "5511987654321"): ts(1790259200),
                          ("phone", "5511912345678"): None}
    # Never a chat message: not stored as one, not counted, the service window stays shut.
    assert list(Message.objects.values_list("type", flat=True)) == ["text"]
    assert PhoneNumber.objects.get(pk=numbers["A"].pk).messages_in_count == 1
    assert contact.last_inbound_at == ts(1790000100)

    # A late message still under the old BSUID and number lands on the same lead.
    deliver(client, late_message("messages_text_inbound.json", "wamid.LATE-MARIANA"))
    contact = Contact.objects.get()
    assert contact.messages.count() == 2
    assert (contact.user_id, contact.wa_id) == (MARIANA_NEW, "5511912345678")


def test_user_changed_user_id_moves_a_username_users_bsuid(client, numbers):
    deliver(client, load("messages_text_inbound_username_no_phone.json"))
    log = deliver(client, load("messages_system_user_changed_user_id.json"))

    contact = Contact.objects.get()
    assert (contact.user_id, contact.wa_id, contact.username) == (CARLA_NEW, "",
                                                                  "carla.imoveis")
    assert ContactIdentity.objects.get(value=CARLA).superseded_at == ts(1790300000)
    assert Message.objects.count() == 1
    assert log.organization == numbers["A"].organization
    # The same delivery again changes nothing.
    deliver(client, load("messages_system_user_changed_user_id.json"))
    assert ContactIdentity.objects.count() == 2

    deliver(client, late_message("messages_text_inbound_username_no_phone.json", "wamid.LATE-C"))
    assert Contact.objects.get().messages.count() == 2
    assert Contact.objects.get().user_id == CARLA_NEW


def test_user_changed_user_id_for_an_unknown_lead_starts_it_with_both_ids(client, numbers):
    deliver(client, load("messages_system_user_changed_user_id.json"))
    contact = Contact.objects.get()
    assert contact.user_id == CARLA_NEW
    assert Message.objects.count() == 0
    # Her first real message, still under the old id, reaches this lead.
    deliver(client, load("messages_text_inbound_username_no_phone.json"))
    assert Contact.objects.get().messages.count() == 1


def test_template_status_updates_are_stored_per_template(client, numbers):
    deliver(client, load("message_template_status_update_approved.json"))
    log = deliver(client, load("message_template_status_update_rejected.json"))
    deliver(client, load("message_template_status_update_rejected.json"))
    assert TemplateStatusEvent.objects.count() == 2
    rejected = TemplateStatusEvent.objects.get(event="REJECTED")
    assert rejected.template_name == "lancamento_promocional"
    assert rejected.reason == "INVALID_FORMAT"
    assert "recommendation" in rejected.info["rejection_info"]
    assert rejected.connection == numbers["A"].connection
    assert log.organization == numbers["A"].organization


def test_quality_update_matches_display_number_and_waba(client, numbers):
    deliver(client, load("phone_number_quality_update_throughput_upgrade.json"))
    config = PhoneNumber.objects.get(pk=numbers["A"].pk)
    assert config.quality_event == "THROUGHPUT_UPGRADE"
    assert config.messaging_limit == "TIER_UNLIMITED"
    assert config.quality_event_at == ts(1790007000)
    assert PhoneNumber.objects.get(pk=numbers["B"].pk).quality_event == ""


def test_quality_update_for_an_unknown_number_is_stored_only(client):
    log = deliver(client, load("phone_number_quality_update_throughput_upgrade.json"))
    assert log.status == WebhookLog.Status.PROCESSED
    assert log.fields == ["phone_number_quality_update"]


def test_unknown_field_is_stored_and_acknowledged(client):
    log = deliver(client, load("unknown_field.json"))
    assert log.fields == ["some_future_field"]
    assert bytes(log.raw_body).startswith(b'{"object"')


@pytest.mark.parametrize("raw,normalized", [
    ("5511987654321", "5511987654321"),
    ("551187654321", "5511987654321"),      # mobile without the 9th digit
    ("+55 (21) 99111-2222", "5521991112222"),
    ("551133334444", "551133334444"),       # landline: no 9th digit
    ("14155550100", "14155550100"),
    ("", ""),
])
def test_brazilian_phone_normalization(raw, normalized):
    assert normalize_phone(raw) == normalized


def test_brazilian_ninth_digit_variants_are_one_lead(client, numbers):
    payload = load("messages_text_inbound_pre_bsuid.json")
    value = change_value(payload)
    value["contacts"][0]["wa_id"] = value["messages"][0]["from"] = "551187654321"
    deliver(client, payload)
    deliver(client, load("messages_text_inbound.json"))
    assert Contact.objects.get().wa_id == "5511987654321"


def test_support_sees_leads_parked_deliveries_and_sync_progress_in_the_admin(client, numbers):
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    deliver(client, load("messages_text_inbound_ctwa_referral.json"))
    deliver(client, load("history_phase0_chunk1.json"))
    deliver(client, load("message_template_status_update_rejected.json"))
    deliver(client, load("messages_status_read.json"))
    PhoneNumber.objects.filter(pk=numbers["A"].pk).update(status=PhoneNumber.Status.PENDING)
    deliver(client, load("messages_text_inbound.json"), expect=WebhookLog.Status.PARKED)
    staff = get_user_model().objects.create_superuser("support", "s@x.test", "pw-123456789")
    client.force_login(staff)
    for model in ("contact", "messagestatus", "historysync", "historychunk",
                  "templatestatusevent", "message"):
        url = reverse(f"admin:whatsapp_{model}_changelist")
        assert client.get(url).status_code == 200, model
    contact = Contact.objects.get(user_id="BR.1502576394655843117",
                                  organization=numbers["A"].organization)
    assert client.get(reverse("admin:whatsapp_contact_change", args=[contact.pk])
                      ).status_code == 200
    parked = client.get(reverse("admin:whatsapp_webhooklog_changelist") + "?status=parked")
    assert b"304000000000101" in parked.content


@pytest.mark.parametrize("newest_first", [False, True])
def test_profile_name_is_the_newest_whatever_the_order(client, numbers, newest_first):
    body = load("messages_text_inbound.json")
    change = body["entry"][0]["changes"][0]
    changes = []
    for wamid, when, name in (("wamid.OLD", "1790000100", "Mariana"),
                              ("wamid.NEW", "1790000500", "Mariana Souza Lima")):
        c = copy.deepcopy(change)
        c["value"]["contacts"][0]["profile"]["name"] = name
        c["value"]["messages"][0].update(id=wamid, timestamp=when)
        changes.append(c)
    body["entry"][0]["changes"] = list(reversed(changes)) if newest_first else changes
    deliver(client, body)
    contact = Contact.objects.get()
    assert contact.profile_name == "Mariana Souza Lima"
    assert contact.profile_name_at == ts(1790000500)


def test_a_lead_touched_by_a_later_delivery_moves_to_the_top(client, numbers):
    """Leads are listed by their last activity (updated_at), also after bulk updates."""
    body = load("messages_text_inbound.json")
    deliver(client, body)
    before = Contact.objects.get().updated_at
    later = copy.deepcopy(body)
    change_value(later)["messages"][0].update(
        id="wamid.LATER", timestamp="1790009999")
    deliver(client, later)
    assert Contact.objects.get().updated_at > before
