"""Sending through the Meta sandbox over real HTTP (pytest-django's live server): Graph's
send endpoint answers like Meta, then the sandbox posts signed sent/delivered/read webhooks to
the product's real webhook URL, and they come back to the right send."""

import json

import pytest
from django.utils import timezone

from organizations.models import ApiToken
from tests.factories import ConnectionFactory, MembershipFactory, PhoneNumberFactory
from tests.meta import change_value
from tests.sandbox.conftest import Sandbox, wait_for
from whatsapp.core.graph import GraphClient
from whatsapp.models import FeatureFlag, MessageTemplate, OutboundMessage, SendPolicy, WebhookLog
from whatsapp.sending.rules import SENDING_FLAG
from whatsapp.sending.templates import template_use_set, templates_sync
from whatsapp.sending.worker import outbound_send
from whatsapp.webhooks.process import webhook_process

pytestmark = pytest.mark.django_db(transaction=True)
S = OutboundMessage.Status
URL = "/api/v1/whatsapp/messages"


@pytest.fixture
def meta(live_server, settings):
    """The sandbox as Meta: Graph at /sandbox/graph, webhooks to this server, no delays."""
    settings.META_GRAPH_API_URL = f"{live_server.url}/sandbox/graph"
    client = Sandbox(live_server.url)
    client.switches(webhook_url=client.webhook_url, app_installed_delay_ms=0, event_gap_ms=0,
                    retry_delays=[0.2, 0.2])
    yield client
    client.api("POST", "reset")  # stop its threads before the tables are flushed
    client.http.close()


@pytest.fixture
def tenant(meta, settings):
    """An organization connected to a sandbox coexistence number, sending enabled."""
    settings.WHATSAPP_SEND_MODE = "enabled"
    result, token = meta.connected("coexistence")
    waba, phone = result["waba_id"], result["phone_number_ids"][0]
    assert GraphClient(token).subscribe_app(waba)  # without it Meta sends no statuses
    membership = MembershipFactory()
    org = membership.organization
    connection = ConnectionFactory(organization=org, waba_id=waba)
    connection.set_access_token(token)
    connection.save()
    config = PhoneNumberFactory(connection=connection, phone_number_id=phone, is_on_biz_app=True)
    SendPolicy.objects.create(organization=org, mode="enabled")
    templates_sync(connection)
    template_use_set(template=MessageTemplate.objects.get(name="confirmacao_visita"),
                     use="confirmacao")
    _, raw = ApiToken.issue(user=membership.user, organization=org)
    return {"org": org, "config": config, "bearer": f"Bearer {raw}"}


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
