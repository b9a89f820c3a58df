"""Templates that follow Meta (issue 16 §5): template_category_update and
message_template_quality_update through the real webhook URL with real signatures, the
confirmation automation waits for, and a template sync that reads every page."""

import pytest
import responses

from tests.ingest_support import deliver, ts
from tests.meta import GRAPH
from tests.sending.conftest import WABA
from tests.sending.test_sending import (
    URL,
    lead,
    queue,
    sends,
    template_body,
)
from tests.support import staff_client
from whatsapp.models import MessageTemplate, OutboundMessage, TemplateStatusEvent
from whatsapp.sending.templates import templates_sync
from whatsapp.sending.worker import outbound_send

pytestmark = pytest.mark.django_db
S = OutboundMessage.Status
TEMPLATE_ID = "606000000000001"


def template_webhook(field: str, value: dict, time: int = 1790100000) -> dict:
    """A template webhook as META-PLATFORM.md §0 documents it: entry.id is the WABA, with time."""
    value = {"message_template_id": int(TEMPLATE_ID), "message_template_name": "confirmacao_visita",
             "message_template_language": "pt_BR", **value}
    return {"object": "whatsapp_business_account",
            "entry": [{"id": WABA, "time": time, "changes": [{"value": value, "field": field}]}]}


def recategorised(previous: str = "UTILITY", new: str = "MARKETING", time: int = 1790100000):
    return template_webhook("template_category_update",
                            {"previous_category": previous, "new_category": new}, time)


def quality(new: str, previous: str = "GREEN", time: int = 1790100000) -> dict:
    return template_webhook("message_template_quality_update",
                            {"previous_quality_score": previous, "new_quality_score": new}, time)


def confirm(support, template) -> str:
    response = support.post("/admin/whatsapp/messagetemplate/", {
        "action": "confirm_category", "_selected_action": [template.pk]}, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def test_utility_moved_to_marketing_waits_for_a_person_before_automation_sends_it(
        client, api, org, template, sending_on, graph, settings):
    settings.WHATSAPP_PAIR_RATE_SECONDS = 0  # two sends to one lead in a row, on purpose
    contact = lead(org)
    log = deliver(client, recategorised())
    assert log.organization == org

    template.refresh_from_db()
    assert (template.category, template.previous_category) == ("MARKETING", "UTILITY")
    assert template.category_confirmation_required and template.category_changed_at == ts(
        1790100000)
    event = TemplateStatusEvent.objects.get(event="CATEGORY_UPDATE")
    assert event.info == {"previous_category": "UTILITY", "new_category": "MARKETING"}

    # Automation is refused with a code the caller can act on; nothing is queued.
    refused = api.post(URL, template_body(automated=True, to=None, contactId=contact.pk),
                       format="json")
    assert refused.status_code == 409
    assert refused.json()["code"] == "template_category_unconfirmed"
    assert "Confirmar nova categoria" in refused.json()["error"]
    assert not OutboundMessage.objects.filter(automated=True).exists()
    # A person's own send still goes.
    assert outbound_send(queue(api, template_body()).pk).status == S.ACCEPTED

    # Support confirms in the admin; automation may send it again.
    assert "Nova categoria confirmada" in confirm(staff_client(group="Suporte"), template)
    template.refresh_from_db()
    assert not template.category_confirmation_required
    assert template.category_confirmed_at and template.category_confirmed_by.is_staff
    automated = queue(api, template_body(automated=True, to=None, contactId=contact.pk))
    assert outbound_send(automated.pk).status == S.ACCEPTED
    assert len(sends(graph)) == 2

    # The same delivery again (Meta retries) does not ask for a second confirmation.
    deliver(client, recategorised())
    template.refresh_from_db()
    assert not template.category_confirmation_required


def test_a_change_while_an_automated_send_waits_blocks_it(client, api, org, template,
                                                         sending_on, graph):
    message = queue(api, template_body(automated=True))
    deliver(client, recategorised())
    assert outbound_send(message.pk).status == S.BLOCKED
    message.refresh_from_db()
    assert "Confirmar nova categoria" in message.status_reason
    assert message.events.get(event="blocked").detail["code"] == "template_category_unconfirmed"
    assert sends(graph) == []


def test_confirming_needs_the_permission_and_a_pending_change(client, template):
    deliver(client, recategorised())
    # Staff without the permission: the action is not offered, nothing changes.
    response = staff_client("whatsapp.view_messagetemplate").post(
        "/admin/whatsapp/messagetemplate/",
        {"action": "confirm_category", "_selected_action": [template.pk]})
    assert response.status_code in (200, 302)
    template.refresh_from_db()
    assert template.category_confirmation_required
    # Nothing to confirm on a template that was never re-categorised.
    other = MessageTemplate.objects.create(organization=template.organization, waba_id=WABA,
                                           name="lembrete", language="pt_BR", status="APPROVED")
    assert "não tinham mudança de categoria" in confirm(staff_client(group="Suporte"), other)


def test_older_and_reverse_changes(client, template):
    deliver(client, recategorised(time=1790100000))
    # Meta moves it back to utility later: no confirmation needed any more.
    deliver(client, recategorised("MARKETING", "UTILITY", time=1790200000))
    template.refresh_from_db()
    assert (template.category, template.category_confirmation_required) == ("UTILITY", False)
    # An older event delivered late does not win.
    deliver(client, recategorised(time=1790050000))
    template.refresh_from_db()
    assert (template.category, template.category_confirmation_required) == ("UTILITY", False)
    assert TemplateStatusEvent.objects.filter(event="CATEGORY_UPDATE").count() == 3


def test_an_announced_change_is_recorded_and_changes_nothing_yet(client, api, org, template,
                                                                sending_on):
    deliver(client, template_webhook("template_category_update", {
        "correct_category": "MARKETING", "new_category": "MARKETING",
        "category_update_timestamp": 1790700000}))
    template.refresh_from_db()
    assert (template.category, template.upcoming_category) == ("UTILITY", "MARKETING")
    assert template.upcoming_category_at == ts(1790700000)
    assert not template.category_confirmation_required
    assert TemplateStatusEvent.objects.get().event == "CATEGORY_UPDATE_UPCOMING"
    queue(api, template_body(automated=True))


def test_quality_score_is_recorded_newest_wins_and_support_sees_it(client, template):
    deliver(client, quality("YELLOW", time=1790100000))
    deliver(client, quality("RED", "YELLOW", time=1790200000))
    deliver(client, quality("GREEN", time=1790000000))  # late, older
    template.refresh_from_db()
    assert (template.quality_score, template.quality_score_at) == ("RED", ts(1790200000))
    assert TemplateStatusEvent.objects.filter(event="QUALITY_UPDATE").count() == 3

    support = staff_client(group="Suporte")
    page = support.get(f"/admin/whatsapp/messagetemplate/{template.pk}/change/").content.decode()
    assert "Nota de qualidade" in page and "Baixa" in page
    events = support.get("/admin/whatsapp/templatestatusevent/").content.decode()
    assert "Qualidade alterada" in events


def test_a_template_webhook_for_an_unknown_template_creates_it(client, org, number):
    deliver(client, recategorised())
    created = MessageTemplate.objects.get()
    assert (created.name, created.template_id, created.organization) == (
        "confirmacao_visita", TEMPLATE_ID, org)
    assert created.category == "MARKETING"


def page(names: list[str], after: str = "", category: str = "UTILITY") -> dict:
    body: dict = {"data": [{"name": n, "language": "pt_BR", "status": "APPROVED", "id": f"60{i}",
                            "category": category, "components": [{"type": "BODY", "text": "Oi"}]}
                           for i, n in enumerate(names)],
                  "paging": {"cursors": {"before": "QVFI", "after": after or "END"}}}
    if after:
        # Meta's next link carries its own token: the product never calls it as is.
        body["paging"]["next"] = (f"{GRAPH}/{WABA}/message_templates"
                                  f"?access_token=EAAsecret&limit=25&after={after}")
    return body


def test_sync_follows_every_page_and_notices_a_recategorisation(number, template):
    with responses.RequestsMock() as rsps:
        url = f"{GRAPH}/{WABA}/message_templates"
        rsps.get(url, json=page(["confirmacao_visita", "lembrete"], after="P2"),
                 match=[responses.matchers.query_param_matcher({"limit": "100"},
                                                               strict_match=False)])
        rsps.get(url, json=page(["cancelamento"], after="P3"),
                 match=[responses.matchers.query_param_matcher({"after": "P2"},
                                                               strict_match=False)])
        rsps.get(url, json=page(["lead_followup"], category="MARKETING"),
                 match=[responses.matchers.query_param_matcher({"after": "P3"},
                                                               strict_match=False)])
        result = templates_sync(number.connection)
        assert len(rsps.calls) == 3
        assert all("EAAsecret" not in c.request.url and "access_token" not in c.request.url
                   for c in rsps.calls)
    assert (result.created, result.updated) == (3, 1)
    assert set(MessageTemplate.objects.values_list("name", flat=True)) == {
        "confirmacao_visita", "lembrete", "cancelamento", "lead_followup"}

    # Meta re-categorised one while its webhook was lost: the sync sees it.
    with responses.RequestsMock() as rsps:
        rsps.get(f"{GRAPH}/{WABA}/message_templates",
                 json=page(["confirmacao_visita"], category="MARKETING"))
        templates_sync(number.connection)
    template.refresh_from_db()
    assert template.category_confirmation_required and template.previous_category == "UTILITY"
