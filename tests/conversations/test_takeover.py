"""Human takeover that ends: the tenant (API, page) or the timeout hands a conversation back
to automation, and both are lead events; a person's hand-back is also in the audit log."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditLog
from tests.factories import ContactFactory, MembershipFactory, fixture_numbers
from tests.ingest_support import deliver
from tests.meta import change_value, load
from whatsapp.conversations.takeover import takeovers_expire
from whatsapp.models import Contact, LeadEvent
from whatsapp.sending.rules import handled_by_person

pytestmark = pytest.mark.django_db

API = "/api/v1/whatsapp/conversations/{}/hand-back"
PAGE = "/dashboard/conversations/human"


def taken_over(org, hours_ago: float = 1) -> Contact:
    return ContactFactory(organization=org,
                          human_takeover_at=timezone.now() - timedelta(hours=hours_ago))


def test_the_tenant_hands_a_conversation_back(api, org, membership):
    contact = taken_over(org)

    response = api.post(API.format(contact.pk))

    assert response.status_code == 200, response.json()
    assert response.json()["conversation"]["humanTakeover"] is False
    contact.refresh_from_db()
    assert not contact.taken_over and not handled_by_person(contact)
    event = LeadEvent.objects.get()
    assert (event.type, event.stream) == ("conversation.handed_back", f"contact:{contact.pk}")
    assert (event.data["by"], event.data["user_id"]) == ("tenant", membership.user.pk)
    entry = AuditLog.objects.get(action=AuditLog.Action.CONVERSATION_HANDED_BACK)
    assert (entry.actor, entry.organization, entry.target) == (
        membership.user, org, f"contact:{contact.pk}")
    # When the person took it over; nothing that names the lead.
    assert entry.metadata == {"human_takeover_at": contact.human_takeover_at.isoformat()}


def test_another_tenants_conversation_is_not_found_and_unchanged(api, org):
    other = taken_over(MembershipFactory().organization)

    response = api.post(API.format(other.pk))

    assert response.status_code == 404
    assert response.json() == {"error": "Conversa não encontrada."}
    other.refresh_from_db()
    assert other.taken_over and LeadEvent.objects.count() == 0
    assert not AuditLog.objects.exists()
    assert api.post(API.format(2**63)).status_code == 404


def test_a_conversation_with_the_automation_is_refused_in_portuguese(api, org):
    contact = ContactFactory(organization=org)

    response = api.post(API.format(contact.pk))

    assert response.status_code == 409
    assert response.json()["code"] == "not_taken_over"
    assert "automação" in response.json()["error"]
    assert LeadEvent.objects.count() == 0 and not AuditLog.objects.exists()


def test_the_timeout_hands_back_after_hours_without_a_phone_app_message(org, settings):
    settings.WHATSAPP_HUMAN_TAKEOVER_HOURS = 12
    old, recent = taken_over(org, hours_ago=13), taken_over(org, hours_ago=11)

    assert takeovers_expire() == 1

    old.refresh_from_db()
    recent.refresh_from_db()
    assert not old.taken_over and recent.taken_over
    event = LeadEvent.objects.get()
    assert (event.type, event.contact_id, event.data["by"]) == (
        "conversation.handed_back", old.pk, "timeout")
    assert takeovers_expire() == 0  # handed back once
    # Nobody decided it: the lead event (by "timeout") is its record, not the audit log.
    assert not AuditLog.objects.exists()


def test_echo_takeover_timeout_then_a_new_echo_takes_over_again(client, settings):
    settings.WHATSAPP_HUMAN_TAKEOVER_HOURS = 12
    fixture_numbers()
    deliver(client, load("smb_message_echoes_text.json"))  # sent 1790001200 (2026-09)
    contact = Contact.objects.get()
    assert contact.taken_over

    assert takeovers_expire() == 1
    contact.refresh_from_db()
    assert not contact.taken_over
    # A late copy of an older echo does not take it over again; a new one does.
    late = load("smb_message_echoes_text.json")
    change_value(late)["message_echoes"][0]["id"] = "wamid.late"
    deliver(client, late)
    assert not Contact.objects.get().taken_over
    new = load("smb_message_echoes_text.json")
    change_value(new)["message_echoes"][0]["id"] = "wamid.new"
    # Seconds, as Meta sends them: a moment after the hand-back.
    change_value(new)["message_echoes"][0]["timestamp"] = str(int(timezone.now().timestamp()) + 1)
    deliver(client, new)
    assert Contact.objects.get().taken_over

    types = list(LeadEvent.objects.filter(stream=f"contact:{contact.pk}")
                 .order_by("sequence").values_list("type", flat=True))
    assert types == ["contact.created", "conversation.human_takeover",
                     "conversation.handed_back", "conversation.human_takeover"]


def test_the_page_lists_taken_over_conversations_and_hands_one_back(client, admin_user, org):
    mine = taken_over(org)
    mine.profile_name = "Mariana Souza"
    mine.save()
    theirs = taken_over(MembershipFactory().organization)
    client.force_login(admin_user)

    html = client.get(PAGE).content.decode()
    assert "Conversas com uma pessoa" in html and "Mariana Souza" in html
    assert "Devolver à automação" in html

    response = client.post(PAGE, {"contact": theirs.pk}, follow=True)
    assert "Conversa não encontrada." in response.content.decode()
    theirs.refresh_from_db()
    assert theirs.taken_over

    response = client.post(PAGE, {"contact": mine.pk}, follow=True)
    assert "devolvida à automação" in response.content.decode()
    assert not Contact.objects.get(pk=mine.pk).taken_over
    entry = AuditLog.objects.get(action=AuditLog.Action.CONVERSATION_HANDED_BACK)
    assert (entry.actor, entry.organization, entry.target) == (
        admin_user, org, f"contact:{mine.pk}")
    assert AuditLog.objects.count() == 1  # the other tenant's refused attempt left none
    html = client.get(PAGE).content.decode()
    assert "Mariana Souza" not in html and "Nenhuma conversa está com uma pessoa" in html
