"""Issue 19 §5 in a real browser: the imobiliária's admin sees the conversations a person took
over from the phone app and hands one back to the automation with a button."""

from datetime import timedelta

import pytest
from django.utils import timezone

from whatsapp.models import Contact, LeadEvent

from ..factories import ContactFactory
from .conftest import shot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_the_admin_hands_a_conversation_back_from_the_page(admin_page, live_server):
    page = admin_page
    lead = ContactFactory(organization=page.organization, profile_name="Mariana Souza",
                          human_takeover_at=timezone.now() - timedelta(hours=2))
    ContactFactory(organization=page.organization, profile_name="João Lima")  # with automation

    page.get_by_role("link", name="Conversas com uma pessoa").click()
    page.get_by_role("heading", name="Conversas com uma pessoa").wait_for()
    row = page.get_by_role("row", name="Mariana Souza")
    assert row.is_visible()
    assert page.get_by_role("row", name="João Lima").count() == 0
    shot(page, "takeover-list")

    row.get_by_role("button", name="Devolver à automação").click()
    page.get_by_text("Conversa com Mariana Souza devolvida à automação.").wait_for()
    assert page.get_by_text("Nenhuma conversa está com uma pessoa agora").is_visible()
    shot(page, "takeover-handed-back")

    assert not Contact.objects.get(pk=lead.pk).taken_over
    event = LeadEvent.objects.get(type="conversation.handed_back")
    assert (event.contact_id, event.data["by"]) == (lead.pk, "tenant")
