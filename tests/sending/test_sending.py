"""Sending (issue 9): templates, the send API and queue, its safety rules, statuses coming
back, and pacing. Graph is mocked at the HTTP layer (`responses`); task functions are called
directly; status webhooks go through the real webhook URL with real signatures."""

import copy
import itertools
import json
import re
import threading
import time
from datetime import timedelta

import pytest
import responses
from django.db import connections
from django.utils import timezone

from tests.factories import (
    ContactFactory,
    ContactIdentityFactory,
    MembershipFactory,
    PhoneNumberFactory,
)
from tests.meta import GRAPH, change_value, load, post_signed
from tests.sending.conftest import PHONE, WABA
from tests.support import busiest_second, times_from_processes
from whatsapp.models import (
    Contact,
    FeatureFlag,
    FeatureFlagOverride,
    Message,
    MessageTemplate,
    OutboundMessage,
    SendPolicy,
    WebhookLog,
)
from whatsapp.sending import rules, worker
from whatsapp.sending.queue import outbound_queue
from whatsapp.sending.rules import SENDING_FLAG
from whatsapp.sending.templates import templates_sync
from whatsapp.sending.worker import outbound_send
from whatsapp.webhooks.process import webhook_process

pytestmark = pytest.mark.django_db
URL = "/api/v1/whatsapp/messages"
LEAD = "5511987654321"
S = OutboundMessage.Status


def lead(org, *, inbound_ago: timedelta | None = timedelta(hours=1), takeover: bool = False,
         phone: str = LEAD) -> Contact:
    now = timezone.now()
    contact = ContactFactory(organization=org, wa_id=phone,
                             last_inbound_at=now - inbound_ago if inbound_ago else None,
                             human_takeover_at=now - timedelta(minutes=5) if takeover else None)
    ContactIdentityFactory(contact=contact, kind="phone", value=phone)
    return contact


def sends(rsps) -> list[dict]:
    return [json.loads(c.request.body) for c in rsps.calls
            if c.request.url.split("?")[0].endswith("/messages")]


def template_body(**extra) -> dict:
    """A template send to the lead; extra=None drops a key (e.g. to=None with contactId)."""
    body = {"type": "template", "to": LEAD,
            "template": {"use": "confirmacao", "parameters": ["Mariana", "amanhã às 15h"]},
            **extra}
    return {k: v for k, v in body.items() if v is not None}


def queue(api, body: dict, **headers):
    response = api.post(URL, body, format="json", **headers)
    assert response.status_code in (200, 202), response.json()
    return OutboundMessage.objects.get(pk=response.json()["message"]["id"])


def status_webhook(client, *, wamid: str, status: str, callback: str = "",
                   errors: list | None = None, phone: str = PHONE) -> str:
    """Posts one signed status webhook through the real URL and processes it."""
    body = copy.deepcopy(load("messages_status_sent.json"))
    value = change_value(body)
    value["metadata"]["phone_number_id"] = phone
    item = value["statuses"][0]
    item.update(id=wamid, status=status, timestamp=str(int(time.time())))
    if callback:
        item["biz_opaque_callback_data"] = callback
    if errors:
        item["errors"] = errors
        item.pop("pricing", None)
    assert post_signed(client, body).status_code == 200
    return webhook_process(WebhookLog.objects.latest("id").pk)


# --- templates ------------------------------------------------------------------------------------
def test_templates_sync_from_the_waba_and_follow_status_events(client, org, number):
    with responses.RequestsMock() as rsps:
        rsps.get(f"{GRAPH}/{WABA}/message_templates", json={"data": [
            {"name": "confirmacao_visita", "status": "APPROVED", "category": "UTILITY",
             "language": "pt_BR", "id": "606000000000001", "components": [
                 {"type": "HEADER", "format": "TEXT", "text": "Visita {{1}}"},
                 {"type": "BODY", "text": "Olá {{1}}, visita confirmada para {{2}}. {{1}}!"}]},
            {"name": "lembrete", "status": "PENDING", "category": "UTILITY",
             "language": "pt_BR", "id": "606000000000002", "components": []},
        ]})
        result = templates_sync(number.connection)
        assert rsps.calls[0].request.headers["Authorization"] == "Bearer EAAbusiness-token"
    assert (result.created, result.updated) == (2, 0)
    confirmacao = MessageTemplate.objects.get(name="confirmacao_visita")
    assert confirmacao.organization == org and confirmacao.is_sendable
    assert (confirmacao.body_parameter_count, confirmacao.header_parameter_count) == (2, 1)

    # Meta pauses it: the stored event moves the template's status (newest event wins).
    paused = load("message_template_status_update_approved.json")
    paused["entry"][0]["time"] = int(time.time()) + 60
    change_value(paused).update(event="PAUSED", reason="LOW_QUALITY")
    assert post_signed(client, paused).status_code == 200
    assert webhook_process(WebhookLog.objects.latest("id").pk) == "processed"
    confirmacao.refresh_from_db()
    assert (confirmacao.status, confirmacao.status_reason) == ("PAUSED", "LOW_QUALITY")
    # An older event arriving late (Meta does not order deliveries) changes nothing.
    older = load("message_template_status_update_approved.json")
    older["entry"][0]["time"] = int(time.time()) - 3600
    post_signed(client, older)
    webhook_process(WebhookLog.objects.latest("id").pk)
    confirmacao.refresh_from_db()
    assert confirmacao.status == "PAUSED"


def test_template_is_validated_before_queueing(api, org, number, template, sending_on, settings):
    def refused(template_ref: dict) -> dict:
        response = api.post(URL, {"type": "template", "to": LEAD, "template": template_ref},
                            format="json")
        assert response.status_code == 400, response.json()
        return response.json()

    assert "2" in refused({"use": "confirmacao", "parameters": ["só um"]})["error"]
    assert "pt_BR" in refused({"name": "confirmacao_visita", "language": "en_US",
                               "parameters": ["a", "b"]})["error"]
    assert refused({"name": "nao_existe", "language": "pt_BR"})["code"] == "invalid_template"
    assert refused({"use": "cancelamento"})["code"] == "invalid_template"
    assert "hello_world" in refused({"name": "hello_world", "language": "en_US"})["error"]
    MessageTemplate.objects.filter(pk=template.pk).update(status="REJECTED")
    assert "REJECTED" in refused({"use": "confirmacao", "parameters": ["a", "b"]})["error"]
    assert not OutboundMessage.objects.exists()

    # Mapping hello_world to a use does not get around the setting.
    MessageTemplate.objects.create(organization=org, waba_id=WABA, name="hello_world",
                                   language="en_US", status="APPROVED", use="teste")
    assert "hello_world" in refused({"use": "teste"})["error"]

    settings.WHATSAPP_ALLOW_HELLO_WORLD = True
    message = queue(api, {"type": "template", "to": LEAD,
                          "template": {"name": "hello_world", "language": "en_US"}})
    assert message.payload["template"] == {"name": "hello_world", "language": {"code": "en_US"}}
    MessageTemplate.objects.filter(name="hello_world").delete()  # not synced: still allowed
    message = queue(api, {"type": "template", "to": LEAD,
                          "template": {"name": "hello_world", "language": "en_US"}})
    assert message.template is None


# --- the API and the queue ------------------------------------------------------------------------
def test_send_is_queued_audited_and_sent_with_callback_data(
        api, org, admin_user, number, template, sending_on, graph,
        django_capture_on_commit_callbacks):
    contact = lead(org)
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(URL, template_body(), format="json")
    assert response.status_code == 202
    assert len(callbacks) == 1  # the send task is enqueued after commit
    message = OutboundMessage.objects.get(pk=response.json()["message"]["id"])
    assert (message.status, message.contact, message.actor) == (S.QUEUED, contact, "api_token")
    assert message.queued_by_user == admin_user and message.queued_by_token is not None

    assert outbound_send(message.pk).status == S.ACCEPTED
    assert outbound_send(message.pk).status == "skipped"  # a redelivered task sends nothing
    [sent] = sends(graph)
    assert sent["biz_opaque_callback_data"] == f"qlk:{message.pk}"
    assert sent["template"]["components"][0]["parameters"][1]["text"] == "amanhã às 15h"
    message.refresh_from_db()
    assert message.status == S.ACCEPTED and message.wamid == "wamid.TEST0001"
    assert message.graph_called_at and message.accepted_at
    assert Message.objects.get(wamid="wamid.TEST0001").direction == "outbound"
    detail = api.get(f"{URL}/{message.pk}").json()["message"]
    assert [e["event"] for e in detail["events"]] == ["queued", "accepted"]
    assert "EAAbusiness" not in json.dumps(detail)


def test_dry_run_never_calls_graph(api, org, number, template, settings, graph):
    settings.WHATSAPP_SEND_MODE = "enabled"  # the organization has no policy: dry run
    lead(org)
    message = queue(api, template_body())
    assert outbound_send(message.pk).status == S.DRY_RUN
    assert sends(graph) == []
    message.refresh_from_db()
    assert message.status == S.DRY_RUN and message.payload["to"] == LEAD
    assert message.graph_called_at is None


def test_disabled_mode_and_allowlist_refuse(api, org, number, template, sending_on, settings):
    settings.WHATSAPP_SEND_ALLOWLIST = ["+55 11 90000-0000"]
    response = api.post(URL, template_body(), format="json")
    assert (response.status_code, response.json()["code"]) == (403, "recipient_not_allowed")
    settings.WHATSAPP_SEND_ALLOWLIST = []
    SendPolicy.objects.filter(organization=org).update(allowlist=["5511987654321"])
    assert api.post(URL, template_body(), format="json").status_code == 202

    settings.WHATSAPP_SEND_MODE = "disabled"  # the environment's switch wins over the tenant's
    response = api.post(URL, template_body(), format="json")
    assert (response.status_code, response.json()["code"]) == (403, "sending_disabled")


def test_duplicate_request_sends_once(api, org, number, template, sending_on, graph):
    first = api.post(URL, template_body(idempotencyKey="visita-42"), format="json")
    again = api.post(URL, template_body(), format="json", HTTP_IDEMPOTENCY_KEY="visita-42")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json()["message"]["id"] == again.json()["message"]["id"]
    for message in OutboundMessage.objects.all():
        outbound_send(message.pk)
        outbound_send(message.pk)
    assert len(sends(graph)) == 1
    # The same key for a different message is an error, not a silent drop.
    other = api.post(URL, template_body(idempotencyKey="visita-42", to="5511900000001"),
                     format="json")
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")


def test_same_key_in_two_organizations_are_two_messages(api, org, number, template, sending_on):
    queue(api, template_body(idempotencyKey="k1"))
    other = MembershipFactory().organization
    PhoneNumberFactory(connection__organization=other)
    SendPolicy.objects.create(organization=other, mode="enabled")
    assert OutboundMessage.objects.filter(idempotency_key="k1").count() == 1


def test_policy_error_131047_is_not_retried(api, org, number, template, sending_on):
    message = queue(api, template_body())
    with responses.RequestsMock() as rsps:
        rsps.post(f"{GRAPH}/{PHONE}/messages", status=400, json={"error": {
            "message": "Re-engagement message", "type": "OAuthException", "code": 131047,
            "error_data": {"messaging_product": "whatsapp",
                           "details": "More than 24 hours have passed"}}})
        assert outbound_send(message.pk).status == S.FAILED
        assert outbound_send(message.pk).status == "skipped"
        assert worker.outbound_sweep() == 0
        assert len(rsps.calls) == 1
    message.refresh_from_db()
    assert (message.status, message.error_code, message.attempts) == (S.FAILED, 131047, 1)
    assert message.next_attempt_at is None and message.failed_at


def test_transient_error_backs_off_then_sends(api, org, number, template, sending_on, settings):
    settings.WHATSAPP_SEND_RETRY_BASE_SECONDS = 10
    message = queue(api, template_body())
    with responses.RequestsMock() as rsps:
        rsps.post(f"{GRAPH}/{PHONE}/messages", status=503,
                  json={"error": {"message": "Service unavailable", "code": 2}})
        outcome = outbound_send(message.pk)
        assert outcome.status == "retry" and 5 <= outcome.retry_in <= 10
        message.refresh_from_db()
        assert message.status == S.QUEUED and message.next_attempt_at > timezone.now()
        assert outbound_send(message.pk).status == "not_due"  # an early retry waits again

        OutboundMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
        rsps.replace(responses.POST, f"{GRAPH}/{PHONE}/messages",
                     json={"messages": [{"id": "wamid.RETRIED"}]})
        assert outbound_send(message.pk).status == S.ACCEPTED
    message.refresh_from_db()
    assert (message.wamid, message.attempts) == ("wamid.RETRIED", 2)
    assert worker.retry_delay(20).total_seconds() <= settings.WHATSAPP_SEND_RETRY_MAX_SECONDS


@pytest.mark.parametrize("code", [131000, 133004])
def test_transient_meta_errors_in_the_policy_range_are_retried(api, org, number, template,
                                                               sending_on, code):
    """131000 (something went wrong) and 133004 (server temporarily unavailable) are Graph's
    transient codes, although they sit among the 131xxx–133xxx refusals."""
    message = queue(api, template_body())
    with responses.RequestsMock() as rsps:
        rsps.post(f"{GRAPH}/{PHONE}/messages", status=503,
                  json={"error": {"message": "Temporarily unavailable", "code": code}})
        assert outbound_send(message.pk).status == "retry"
    message.refresh_from_db()
    assert message.status == S.QUEUED and message.next_attempt_at is not None


def test_read_timeout_is_unknown_not_retried(api, org, number, template, sending_on, client):
    """Meta may have sent it: never risk a second copy; the status webhooks resolve it."""
    import requests

    message = queue(api, template_body())
    with responses.RequestsMock() as rsps:
        rsps.post(f"{GRAPH}/{PHONE}/messages", body=requests.exceptions.ReadTimeout("slow"))
        assert outbound_send(message.pk).status == S.UNKNOWN
    assert status_webhook(client, wamid="wamid.LATE", status="sent",
                          callback=f"qlk:{message.pk}") == "processed"
    message.refresh_from_db()
    assert (message.status, message.wamid) == (S.SENT, "wamid.LATE")


def test_kill_switch_stops_a_queue_in_flight(api, org, number, template, sending_on):
    flag = FeatureFlag.objects.create(name=SENDING_FLAG)
    messages = [queue(api, template_body(to=f"55119000000{i:02d}")) for i in range(5)]

    def accept_then_kill(request):
        if len(rsps.calls) == 1:  # ops pull the switch while the second call is in flight
            FeatureFlag.objects.filter(pk=flag.pk).update(kill_switch=True)
        return 200, {}, json.dumps({"messages": [{"id": f"wamid.K{len(rsps.calls)}"}]})

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, f"{GRAPH}/{PHONE}/messages", callback=accept_then_kill)
        outcomes = [outbound_send(m.pk).status for m in messages]
        assert len(rsps.calls) == 2
    assert outcomes == [S.ACCEPTED, S.ACCEPTED, S.CANCELLED, S.CANCELLED, S.CANCELLED]
    # New requests are refused while the switch is on.
    assert api.post(URL, template_body(), format="json").status_code == 403


def test_organization_override_stops_only_that_tenant(api, org, number, template, sending_on):
    flag = FeatureFlag.objects.create(name=SENDING_FLAG)
    message = queue(api, template_body())
    FeatureFlagOverride.objects.create(flag=flag, organization=org, enabled=False)
    with responses.RequestsMock() as rsps:
        assert outbound_send(message.pk).status == S.CANCELLED
        assert not rsps.calls


# --- the 24 h window and human takeover -----------------------------------------------------------
def test_free_form_only_inside_the_window(api, org, number, template, sending_on, graph,
                                         settings):
    settings.WHATSAPP_PAIR_RATE_SECONDS = 0  # two sends to one lead at once (test_pair_rate.py)
    lead(org, inbound_ago=timedelta(hours=25))
    response = api.post(URL, {"type": "text", "to": LEAD, "text": "Oi!"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "window_closed" and "24" in response.json()["error"]
    # Outside the window, a template is the way.
    assert outbound_send(queue(api, template_body()).pk).status == S.ACCEPTED

    Contact.objects.update(last_inbound_at=timezone.now() - timedelta(minutes=10))
    message = queue(api, {"type": "text", "to": LEAD, "text": "Oi, Mariana!"})
    assert outbound_send(message.pk).status == S.ACCEPTED
    assert sends(graph)[-1]["text"] == {"body": "Oi, Mariana!", "preview_url": False}


def test_unknown_recipient_has_no_window(api, org, number, template, sending_on):
    response = api.post(URL, {"type": "text", "to": "5511912345678", "text": "Oi"}, format="json")
    assert response.json()["code"] == "window_closed"


def test_window_closes_while_queued(api, org, number, template, sending_on):
    lead(org, inbound_ago=timedelta(hours=23, minutes=59))
    message = queue(api, {"type": "text", "to": LEAD, "text": "Oi"})
    Contact.objects.update(last_inbound_at=timezone.now() - timedelta(hours=24, seconds=1))
    with responses.RequestsMock() as rsps:
        assert outbound_send(message.pk).status == S.BLOCKED
        assert not rsps.calls
    message.refresh_from_db()
    assert "24" in message.status_reason


def test_echo_does_not_open_the_window_and_stops_automation(api, client, org, sending_on,
                                                            template, number):
    """A phone-app echo marks the lead as handled by a person and opens no window."""
    echo = load("smb_message_echoes_text.json")
    value = change_value(echo)
    value["metadata"]["phone_number_id"] = PHONE
    echo["entry"][0]["id"] = WABA  # Meta addresses it to that number's WABA
    value["message_echoes"][0]["timestamp"] = str(int(time.time()))
    post_signed(client, echo)
    assert webhook_process(WebhookLog.objects.latest("id").pk) == "processed"
    contact = Contact.objects.get(organization=org)
    assert contact.human_takeover_at and contact.last_inbound_at is None

    text = api.post(URL, {"type": "text", "contactId": contact.pk, "text": "Oi"}, format="json")
    assert text.json()["code"] == "window_closed"
    automated = api.post(URL, template_body(automated=True, to=None, contactId=contact.pk),
                         format="json")
    assert automated.status_code == 409 and automated.json()["code"] == "human_takeover"


def test_human_takeover_refuses_automated_sends_only(api, org, number, template, sending_on,
                                                     graph):
    lead(org, takeover=True)
    body = {"type": "text", "to": LEAD, "text": "Posso ajudar?", "automated": True}
    response = api.post(URL, body, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "human_takeover")
    # The agent typing in the product (not automated) may still send.
    message = queue(api, {**body, "automated": False})
    assert outbound_send(message.pk).status == S.ACCEPTED


def test_takeover_while_queued_holds_the_automated_send(api, org, number, template, sending_on):
    contact = lead(org)
    message = queue(api, template_body(automated=True))
    contact.note_takeover(timezone.now())
    contact.save()
    with responses.RequestsMock() as rsps:
        assert outbound_send(message.pk).status == S.BLOCKED
        assert not rsps.calls
    message.refresh_from_db()
    assert message.status == S.BLOCKED and message.status_reason
    assert message.events.filter(event="blocked", detail__code="human_takeover").exists()


# --- statuses back to the right send --------------------------------------------------------------
def test_statuses_come_back_to_the_right_send(api, client, org, number, template, sending_on,
                                              graph):
    first = queue(api, template_body(to="5511900000001"))
    second = queue(api, template_body(to="5511900000002"))
    for m in (first, second):
        outbound_send(m.pk)
    first.refresh_from_db()
    second.refresh_from_db()

    # By callback data (out of order: read before delivered), and by wamid alone.
    assert status_webhook(client, wamid=second.wamid, status="sent",
                          callback=f"qlk:{second.pk}") == "processed"
    status_webhook(client, wamid=second.wamid, status="read", callback=f"qlk:{second.pk}")
    status_webhook(client, wamid=second.wamid, status="delivered", callback=f"qlk:{second.pk}")
    status_webhook(client, wamid=first.wamid, status="sent")
    error = {"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable"}
    status_webhook(client, wamid=first.wamid, status="failed", callback=f"qlk:{first.pk}",
                   errors=[error])
    # Meta redelivers: nothing changes.
    status_webhook(client, wamid=first.wamid, status="failed", callback=f"qlk:{first.pk}",
                   errors=[error])

    first.refresh_from_db()
    second.refresh_from_db()
    assert (second.status, bool(second.sent_at), bool(second.delivered_at),
            bool(second.read_at)) == (S.READ, True, True, True)
    assert (first.status, first.error_code, first.delivered_at) == (S.FAILED, 131026, None)
    assert first.next_attempt_at is None  # a failed status is never retried
    events = list(first.events.values_list("event", flat=True))
    assert events == ["queued", "accepted", "status_sent", "status_failed"]


def test_a_status_that_beats_the_send_is_applied_and_a_late_lower_one_does_not_win(
        api, client, org, number, template, sending_on, graph):
    """Meta's status webhooks do not wait for our send to record its conversation message."""
    message = queue(api, template_body())
    assert status_webhook(client, wamid="wamid.TEST0001", status="delivered") == "processed"
    outbound_send(message.pk)
    status_webhook(client, wamid="wamid.TEST0001", status="sent")
    recorded = Message.objects.get(wamid="wamid.TEST0001")
    assert recorded.status == "delivered" and recorded.status_at is not None


def test_status_of_another_org_never_touches_our_send(api, client, org, number, template,
                                                      sending_on, graph):
    message = queue(api, template_body())
    outbound_send(message.pk)
    other = PhoneNumberFactory(connection__organization=MembershipFactory().organization)
    message.refresh_from_db()
    status_webhook(client, wamid="wamid.OTHER", status="read", callback=f"qlk:{message.pk}",
                   phone=other.phone_number_id)
    message.refresh_from_db()
    assert message.status == S.ACCEPTED


# --- pacing ---------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_pacing_holds_under_a_burst_across_workers(settings):
    """N sends for one coexistence number, run by 6 concurrent workers sharing Redis: no
    one-second window of recorded Graph-call times holds more than the number's limit."""
    settings.WHATSAPP_SEND_MODE = "enabled"
    settings.WHATSAPP_THROUGHPUT_COEXISTENCE_MPS = limit = 10
    settings.WHATSAPP_PACING_MAX_WAIT_SECONDS = 30
    membership = MembershipFactory()
    org = membership.organization
    config = PhoneNumberFactory(connection__organization=org, is_on_biz_app=True,
                                connection__with_token=True, connection__token="EAAbusiness-token")
    SendPolicy.objects.create(organization=org, mode="enabled")
    MessageTemplate.objects.create(organization=org, waba_id=config.connection.waba_id,
                                   name="lembrete", language="pt_BR", status="APPROVED")
    ids = [outbound_queue(organization=org, request=rules.SendRequest(
        kind="template", to=f"55119{i:08d}", template_name="lembrete",
        template_language="pt_BR"))[0].pk for i in range(35)]

    def worker(share: list) -> None:
        try:
            for message_id in share:
                while outbound_send(message_id).status == "paced":
                    OutboundMessage.objects.filter(pk=message_id).update(next_attempt_at=None)
        finally:
            connections.close_all()

    counter = itertools.count()

    def accept(request):
        return 200, {}, json.dumps({"messages": [{"id": f"wamid.P{next(counter)}"}]})

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, re.compile(rf"{re.escape(GRAPH)}/\d+/messages"),
                          callback=accept)
        threads = [threading.Thread(target=worker, args=(ids[i::6],)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(rsps.calls) == len(ids)

    times = sorted(OutboundMessage.objects.filter(status=S.ACCEPTED)
                   .values_list("graph_called_at", flat=True))
    assert len(times) == len(ids)
    busiest = max(sum(1 for t in times if start <= t < start + timedelta(seconds=1))
                  for start in times)
    assert busiest <= limit
    # And not slower than needed: 35 sends at 10/s take about 3.4 s, not much more.
    assert (times[-1] - times[0]).total_seconds() < len(ids) / limit + 1


def _take_slots(phone: str, limit: int, count: int, out) -> None:
    from whatsapp.sending import pacing

    out.put([pacing.slot_wait(phone, limit, max_wait=30)[0].timestamp() for _ in range(count)])


def test_pacing_is_shared_across_processes():
    """The pacer itself, hammered by 4 OS processes at once: Redis is the only shared state."""
    times = times_from_processes(_take_slots, ("304999", 20, 15))
    assert len(times) == 60
    assert busiest_second(times) <= 20


# --- tenancy --------------------------------------------------------------------------------------
def test_another_organizations_objects_are_404(api, org, number, template, sending_on):
    other = MembershipFactory().organization
    theirs = PhoneNumberFactory(connection__organization=other)
    their_contact = lead(other, phone="5511955555555")
    their_message = OutboundMessage.objects.create(organization=other, config=theirs,
                                                   to="5511955555555", kind="text")

    assert api.get(f"{URL}/{their_message.pk}").status_code == 404
    response = api.post(URL, template_body(to=None, contactId=their_contact.pk), format="json")
    assert response.status_code == 404
    response = api.post(URL, template_body(phoneNumberId=theirs.phone_number_id), format="json")
    assert response.status_code == 404
    assert api.get("/api/v1/whatsapp/templates").json()["templates"][0]["name"] == \
        "confirmacao_visita"
    assert not OutboundMessage.objects.filter(organization=org).exists()


@pytest.mark.parametrize("body", [
    {"type": "fax", "to": LEAD},
    {"type": "text", "to": LEAD},
    {"type": "template", "to": LEAD, "template": {"parameters": ["x"]}},
    {"type": "text", "text": "Oi"},
    {"type": "text", "to": "not a phone", "text": "Oi"},
    {"type": "text", "contactId": 10**30, "text": "Oi"},
    {"type": "template", "to": LEAD, "template": "confirmacao"},
])
def test_bad_input_is_a_400_json_error(api, number, sending_on, body):
    response = api.post(URL, body, format="json")
    assert response.status_code == 400 and response.json()["error"]


def test_unauthenticated_is_401(client):
    response = client.post(URL, {}, content_type="application/json")
    assert response.status_code == 401


# --- ops: command, sweeper, task ------------------------------------------------------------------
def test_sync_templates_command_skips_a_failing_waba(org, number):
    import io

    from django.core.management import call_command

    broken = PhoneNumberFactory(connection__organization=MembershipFactory().organization,
                                connection__with_token=True, connection__token="EAArevoked")
    with responses.RequestsMock() as rsps:
        rsps.get(f"{GRAPH}/{WABA}/message_templates", json={"data": [
            {"name": "lembrete", "status": "APPROVED", "language": "pt_BR", "id": "1"}]})
        rsps.get(f"{GRAPH}/{broken.connection.waba_id}/message_templates", status=401,
                 json={"error": {"message": "Error validating access token", "code": 190}})
        out = io.StringIO()
        call_command("sync_templates", "--json", stdout=out)
    assert json.loads(out.getvalue())["results"] == [
        {"waba_id": WABA, "created": 1, "updated": 0}]
    assert "EAA" not in out.getvalue()


def test_sweeper_re_enqueues_due_and_abandoned_sends(api, org, number, template, sending_on,
                                                     broker):

    due = queue(api, template_body(to="5511900000001"))
    fresh = queue(api, template_body(to="5511900000002"))
    abandoned = queue(api, template_body(to="5511900000003"))
    OutboundMessage.objects.filter(pk=due.pk).update(next_attempt_at=timezone.now())
    OutboundMessage.objects.filter(pk=abandoned.pk).update(
        status=S.SENDING, locked_until=timezone.now() - timedelta(seconds=1))
    broker.clear()
    assert worker.outbound_sweep() == 2
    sends = {args[0] for args in broker.of("send_outbound")}
    assert sends == {str(due.pk), str(abandoned.pk)}
    assert str(fresh.pk) not in sends


def test_send_task_retries_itself_on_a_transient_error(api, org, number, template, sending_on):
    from celery.exceptions import Retry

    from whatsapp.tasks import send_outbound

    message = queue(api, template_body())
    with responses.RequestsMock() as rsps:
        rsps.post(f"{GRAPH}/{PHONE}/messages", status=500, json={"error": {"code": 1}})
        with pytest.raises(Retry):
            send_outbound.apply(args=[str(message.pk)], throw=True)


def test_admin_shows_sends_read_only_and_templates_with_an_editable_use(
        client, api, org, number, template, sending_on, django_user_model):
    message = queue(api, template_body())
    staff = django_user_model.objects.create_superuser("suporte@qualifica.test",
                                                       "suporte@qualifica.test", "x")
    client.force_login(staff)
    pages = ["outboundmessage/", f"outboundmessage/{message.pk}/change/", "messagetemplate/",
             f"messagetemplate/{template.pk}/change/", "sendpolicy/"]
    for url in (f"/admin/whatsapp/{page}" for page in pages):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"EAAbusiness" not in response.content
    response = client.post(f"/admin/whatsapp/messagetemplate/{template.pk}/change/",
                           {"use": "lembrete"})
    assert response.status_code == 302
    template.refresh_from_db()
    assert (template.use, template.name, template.status) == ("lembrete", "confirmacao_visita",
                                                              "APPROVED")
    assert client.post(f"/admin/whatsapp/outboundmessage/{message.pk}/change/",
                       {"status": "sent"}).status_code == 403
