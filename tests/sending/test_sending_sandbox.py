"""Sending through the Meta sandbox over real HTTP (pytest-django's live server): Graph's
send endpoint answers like Meta, then the sandbox posts signed sent/delivered/read webhooks to
the product's real webhook URL, and they come back to the right send."""

import json

import pytest
from django.utils import timezone

from tests.meta import change_value
from tests.sandbox.conftest import wait_for
from whatsapp.models import FeatureFlag, MessageTemplate, OutboundMessage, SendPolicy, WebhookLog
from whatsapp.sending.rules import SENDING_FLAG
from whatsapp.sending.worker import outbound_send
from whatsapp.webhooks.process import webhook_process

pytestmark = pytest.mark.django_db(transaction=True)
S = OutboundMessage.Status
URL = "/api/v1/whatsapp/messages"


def queue(client, tenant, to: str) -> OutboundMessage:
    response = client.post(URL, {"type": "template", "to": to, "template": {
        "use": "confirmacao", "parameters": ["Mariana", "amanhã às 15h"]}},
        content_type="application/json", HTTP_AUTHORIZATION=tenant["bearer"])
    assert response.status_code == 202, response.json()
    return OutboundMessage.objects.get(pk=response.json()["message"]["id"])


def status_rows(count: int) -> list[WebhookLog]:
    def probe():
        rows = [r for r in WebhookLog.objects.order_by("id") if b'"statuses"' in bytes(r.raw_body)]
        return rows if len(rows) >= count else None
    return wait_for(probe, message=f"{count} status webhooks")


def test_send_through_the_sandbox_and_statuses_come_back(client, meta, tenant):
    first = queue(client, tenant, "5511987654321")
    second = queue(client, tenant, "5521912345678")
    assert outbound_send(first.pk).status == S.ACCEPTED
    assert outbound_send(second.pk).status == S.ACCEPTED

    sent = meta.state()["sent_messages"]
    assert [m["to"] for m in sent] == ["5511987654321", "5521912345678"]
    rows = status_rows(6)  # sent, delivered, read for each
    for row in rows:
        assert webhook_process(row.pk) == "processed"
    # Each status carried our callback data, and each send got its own three.
    callbacks = {change_value(json.loads(bytes(r.raw_body)))["statuses"][0]
                 .get("biz_opaque_callback_data") for r in rows}
    assert callbacks == {f"qlk:{first.pk}", f"qlk:{second.pk}"}
    for message, wamid in ((first, sent[0]["wamid"]), (second, sent[1]["wamid"])):
        message.refresh_from_db()
        assert (message.status, message.wamid) == (S.READ, wamid)
        assert message.sent_at <= message.delivered_at <= message.read_at <= timezone.now()
        assert [e for e in message.events.values_list("event", flat=True)] == [
            "queued", "accepted", "status_sent", "status_delivered", "status_read"]


def test_dry_run_and_kill_switch_never_reach_the_sandbox(client, meta, tenant):
    SendPolicy.objects.filter(organization=tenant["org"]).update(mode="dry_run")
    dry = queue(client, tenant, "5511987654321")
    assert outbound_send(dry.pk).status == S.DRY_RUN
    SendPolicy.objects.filter(organization=tenant["org"]).update(mode="enabled")
    queued = queue(client, tenant, "5511987654322")
    FeatureFlag.objects.create(name=SENDING_FLAG, kill_switch=True)
    assert outbound_send(queued.pk).status == S.CANCELLED
    assert meta.state()["sent_messages"] == []


def test_window_closed_error_from_meta_is_not_retried(client, meta, tenant):
    fault = meta.api("POST", "faults", json={
        "path": r"/messages$", "method": "POST", "status": 400, "code": 131047,
        "message": "Re-engagement message", "times": 1})
    assert fault.status_code == 201
    message = queue(client, tenant, "5511987654321")
    assert outbound_send(message.pk).status == S.FAILED
    assert outbound_send(message.pk).status == "skipped"
    message.refresh_from_db()
    assert (message.error_code, message.attempts, message.next_attempt_at) == (131047, 1, None)
    assert meta.state()["faults"][0]["hits"] == 1 and meta.state()["sent_messages"] == []


def send(client, tenant, template: dict, **extra):
    return client.post(URL, {"type": "template", "to": "5511987654321", "template": template,
                             **extra},
                       content_type="application/json", HTTP_AUTHORIZATION=tenant["bearer"])


def test_every_template_page_is_synced_and_rich_sends_are_accepted(client, meta, tenant,
                                                                  settings):
    settings.WHATSAPP_PAIR_RATE_SECONDS = 0  # three sends to one lead in a row, on purpose
    # The sandbox pages its listing two by two: all five arrive only by following paging.next.
    assert set(MessageTemplate.objects.values_list("name", flat=True)) == {
        "confirmacao_visita", "hello_world", "visita_agendada", "ficha_imovel", "tour_virtual"}
    assert MessageTemplate.objects.get(name="visita_agendada").parameter_format == "NAMED"

    named = send(client, tenant, {
        "name": "visita_agendada", "language": "pt_BR",
        "namedParameters": {"nome": "Mariana", "imovel": "apto 42"},
        "header": {"type": "image", "link": "https://cdn.example/fachada.jpg"},
        "buttons": [{"index": 0, "type": "quick_reply", "payload": "confirmar-42"}]})
    document = send(client, tenant, {
        "name": "ficha_imovel", "language": "pt_BR", "parameters": ["Vila Mariana 42"],
        "header": {"type": "document", "id": "505000000000001", "filename": "ficha.pdf"},
        "buttons": [{"index": 0, "type": "url", "text": "vila-mariana-42"}]})
    for response in (named, document):
        assert response.status_code == 202, response.json()
        assert outbound_send(response.json()["message"]["id"]).status == S.ACCEPTED
    assert [m["type"] for m in meta.state()["sent_messages"]] == ["template", "template"]


def test_the_sandbox_refuses_what_meta_would(meta, tenant):
    token = tenant["config"].connection.get_access_token()
    phone = tenant["config"].phone_number_id
    positional_to_named = {"messaging_product": "whatsapp", "to": "5511987654321",
                           "type": "template", "template": {
                               "name": "visita_agendada", "language": {"code": "pt_BR"},
                               "components": [
                                   {"type": "header", "parameters": [
                                       {"type": "image", "image": {"id": "1"}}]},
                                   {"type": "body", "parameters": [
                                       {"type": "text", "text": "Mariana"},
                                       {"type": "text", "text": "apto 42"}]}]}}
    response = meta.graph("POST", f"{phone}/messages", token=token, json=positional_to_named)
    assert response.status_code == 400 and response.json()["error"]["code"] == 132012
    no_header = {**positional_to_named, "template": {
        "name": "tour_virtual", "language": {"code": "pt_BR"}}}
    response = meta.graph("POST", f"{phone}/messages", token=token, json=no_header)
    assert response.status_code == 400 and response.json()["error"]["code"] == 132000
    unknown = {**positional_to_named, "template": {"name": "nao_existe",
                                                   "language": {"code": "pt_BR"}}}
    response = meta.graph("POST", f"{phone}/messages", token=token, json=unknown)
    assert response.json()["error"]["code"] == 132001
    assert meta.state()["sent_messages"] == []


def test_a_recategorisation_from_the_sandbox_holds_automation(client, meta, tenant):
    assert meta.api("POST", "events", json={"kind": "template_category_update",
                                            "waba_id": tenant["config"].connection.waba_id}
                    ).status_code == 202
    row = wait_for(lambda: next((r for r in WebhookLog.objects.order_by("id")
                                 if b'"template_category_update"' in bytes(r.raw_body)), None),
                   message="category webhook")
    assert webhook_process(row.pk) == "processed"
    template = MessageTemplate.objects.get(name="confirmacao_visita")
    assert template.category == "MARKETING" and template.category_confirmation_required
    refused = send(client, tenant, {"use": "confirmacao", "parameters": ["Mariana", "15h"]},
                   automated=True)
    assert refused.status_code == 409
    assert refused.json()["code"] == "template_category_unconfirmed"
