"""Webhooks the sandbox sends, received by the product's real endpoint on the live server."""

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings

from tests.meta import change_value
from tests.sandbox.conftest import wait_for, webhook_rows
from whatsapp.models import WebhookLog

pytestmark = pytest.mark.django_db(transaction=True)


def body_of(row: WebhookLog) -> dict:
    return json.loads(bytes(row.raw_body))


def events_of(rows: list[WebhookLog]) -> list[str]:
    return [c["value"].get("event", c["field"]) for row in rows
            for e in body_of(row)["entry"] for c in e["changes"]]


def assert_signed_like_meta(row: WebhookLog) -> None:
    raw = bytes(row.raw_body)
    expected = "sha256=" + hmac.new(settings.META_APP_SECRET.encode(), raw,
                                    hashlib.sha256).hexdigest()
    assert row.headers["X-Hub-Signature-256"] == expected
    assert row.signature_valid
    # Compact JSON, non-ASCII escaped: the exact bytes Meta signs (§5.1).
    assert raw == json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=True).encode()
    assert raw.isascii()


def test_signup_sends_partner_added_then_partner_app_installed(sandbox):
    result = sandbox.signup("cloud_one")
    rows = webhook_rows(2)
    assert events_of(rows) == ["PARTNER_ADDED", "PARTNER_APP_INSTALLED"]
    for row in rows:
        assert_signed_like_meta(row)
        (entry,) = body_of(row)["entry"]
        assert entry["id"] == settings.SANDBOX_PARTNER_BUSINESS_ID  # the partner, never the WABA
        value = entry["changes"][0]["value"]
        assert value["waba_info"]["waba_id"] == result["waba_id"]
        assert value["waba_info"]["owner_business_id"] == result["business_id"]
        assert "sessionInfo" not in value  # real Meta echoes nothing by default
    state = sandbox.wait_idle()
    assert [a["status_code"] for d in state["deliveries"] for a in d["attempts"]] == [200, 200]


def test_hosted_link_sends_only_partner_added_and_echoes_the_tracking_code_when_asked(sandbox):
    sandbox.switches(echo_tracking_code=True)
    sandbox.signup("cloud_one", flow="hosted",
                   extras={"sessionInfo": {"trackingCode": "7f0c1f9e-2b1a-4c55-9d8e-000000000001"}})
    (row,) = webhook_rows(1)
    value = change_value(body_of(row))
    assert value["event"] == "PARTNER_ADDED"
    assert value["sessionInfo"] == {"trackingCode": "7f0c1f9e-2b1a-4c55-9d8e-000000000001"}
    state = sandbox.wait_idle()
    assert state["codes"] == []  # hosted flow: no code
    assert WebhookLog.objects.count() == 1


def test_smb_app_data_once_per_type_and_its_webhooks_arrive(sandbox):
    result, token = sandbox.connected("coexistence")
    phone = result["phone_number_ids"][0]
    assert sandbox.graph("POST", f"{result['waba_id']}/subscribed_apps", token=token).ok
    webhook_rows(2)  # PARTNER_ADDED, PARTNER_APP_INSTALLED

    for sync_type in ("smb_app_state_sync", "history"):
        first = sandbox.graph("POST", f"{phone}/smb_app_data", token=token,
                              json={"messaging_product": "whatsapp", "sync_type": sync_type})
        assert first.status_code == 200, first.text
        assert first.json()["messaging_product"] == "whatsapp" and first.json()["request_id"]
        again = sandbox.graph("POST", f"{phone}/smb_app_data", token=token,
                              json={"messaging_product": "whatsapp", "sync_type": sync_type})
        assert again.status_code == 400
        assert again.json()["error"]["code"] == 100

    rows = webhook_rows(2 + 1 + 5)[2:]
    for row in rows:
        assert_signed_like_meta(row)
    fields = [body_of(r)["entry"][0]["changes"][0]["field"] for r in rows]
    # Two syncs, two background sends: they may interleave, each one keeps its own order.
    assert sorted(fields) == ["history"] * 5 + ["smb_app_state_sync"]
    values = [change_value(body_of(r)) for r in rows]
    chunks = [v["history"][0]["metadata"] for v in values if "history" in v]
    assert [(c["phase"], c["chunk_order"]) for c in chunks] == [(0, 1), (1, 2), (1, 1), (2, 1)]
    assert chunks[-1]["progress"] == 100
    assert all(body_of(r)["entry"][0]["id"] == result["waba_id"] for r in rows)


def test_declined_history_sends_error_2593109(sandbox):
    result, token = sandbox.connected("coexistence", share_history=False)
    sandbox.graph("POST", f"{result['waba_id']}/subscribed_apps", token=token)
    sandbox.graph("POST", f"{result['phone_number_ids'][0]}/smb_app_data", token=token,
                  json={"messaging_product": "whatsapp", "sync_type": "history"})
    row = webhook_rows(3)[2]
    value = change_value(body_of(row))
    assert value["history"][0]["errors"][0]["code"] == 2593109


def test_without_subscription_message_webhooks_are_dropped(sandbox):
    result, token = sandbox.connected("coexistence")
    sandbox.graph("POST", f"{result['phone_number_ids'][0]}/smb_app_data", token=token,
                  json={"messaging_product": "whatsapp", "sync_type": "smb_app_state_sync"})
    state = sandbox.wait_idle()
    assert [d["status"] for d in state["deliveries"]] == ["delivered", "delivered", "dropped"]


def test_messages_returns_a_wamid_then_sent_delivered_read(sandbox):
    result, token = sandbox.connected("cloud_one")
    phone = result["phone_number_ids"][0]
    sandbox.graph("POST", f"{result['waba_id']}/subscribed_apps", token=token)
    unregistered = sandbox.graph("POST", f"{phone}/messages", token=token, json={
        "messaging_product": "whatsapp", "to": "5511987654321", "type": "text",
        "text": {"body": "Olá"}})
    assert unregistered.json()["error"]["code"] == 133010
    sandbox.graph("POST", f"{phone}/register", token=token,
                  json={"messaging_product": "whatsapp", "pin": "654321"})

    sent = sandbox.graph("POST", f"{phone}/messages", token=token, json={
        "messaging_product": "whatsapp", "to": "+55 11 98765-4321", "type": "text",
        "text": {"body": "Olá! Tudo bem?"}})
    assert sent.status_code == 200
    body = sent.json()
    assert body["contacts"] == [{"input": "+55 11 98765-4321", "wa_id": "5511987654321"}]
    wamid = body["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    rows = webhook_rows(5)[2:]
    statuses = [change_value(body_of(r))["statuses"][0] for r in rows]
    assert [(s["id"], s["status"]) for s in statuses] == [
        (wamid, "sent"), (wamid, "delivered"), (wamid, "read")]


def test_duplicate_reorder_and_batch_switches(sandbox):
    sandbox.switches(duplicate=True, reorder=True)
    sandbox.signup("cloud_one")
    rows = webhook_rows(4)
    assert events_of(rows) == ["PARTNER_APP_INSTALLED", "PARTNER_APP_INSTALLED",
                               "PARTNER_ADDED", "PARTNER_ADDED"]
    assert bytes(rows[0].raw_body) == bytes(rows[1].raw_body)  # a true duplicate
    sandbox.wait_idle()

    sandbox.api("POST", "reset")
    WebhookLog.objects.all().delete()
    sandbox.switches(webhook_url=sandbox.webhook_url, batch=True, app_installed_delay_ms=0,
                     event_gap_ms=0)
    sandbox.signup("cloud_one")
    (row,) = webhook_rows(1)
    (entry,) = body_of(row)["entry"]  # same entry id and time: one entry, two changes
    assert [c["value"]["event"] for c in entry["changes"]] == ["PARTNER_ADDED",
                                                               "PARTNER_APP_INSTALLED"]


class FlakyReceiver(BaseHTTPRequestHandler):
    """Answers 500 to the first POST and 200 after, remembering what it got."""

    received: list[tuple[int, bytes]] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = 500 if not FlakyReceiver.received else 200
        FlakyReceiver.received.append((status, body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_non_200_is_retried_with_backoff_and_every_attempt_recorded(sandbox):
    FlakyReceiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sandbox.switches(webhook_url=f"http://127.0.0.1:{server.server_port}/hook",
                         retry_delays=[0.3, 0.3])
        sandbox.api("POST", "events", json={"kind": "partner_added"})
        state = wait_for(lambda: delivered_state(sandbox), message="the retried delivery")
    finally:
        server.shutdown()
    (delivery,) = state["deliveries"]
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 200]
    assert FlakyReceiver.received[0][1] == FlakyReceiver.received[1][1]


def delivered_state(sandbox) -> dict | None:
    state = sandbox.state()
    done = state["deliveries"] and state["deliveries"][0]["status"] == "delivered"
    return state if done else None


def test_gives_up_after_the_last_retry(sandbox):
    sandbox.switches(webhook_url=sandbox.base + "/sandbox/api/no-such-endpoint",
                     retry_delays=[0.1, 0.1])
    sandbox.api("POST", "events", json={"kind": "account_offboarded"})
    def failed_state():
        state = sandbox.state()
        return state if state["deliveries"][0]["status"] == "failed" else None

    state = wait_for(failed_state, message="the delivery to fail")
    assert [a["status_code"] for a in state["deliveries"][0]["attempts"]] == [404, 404, 404]
