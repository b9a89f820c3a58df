"""Rate limits, logs without secrets, request ids, and the health endpoints."""

import io
import json
import logging
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from ops.models import Heartbeat
from tests.ingest_support import run_command
from tests.meta import load, post_signed, wire
from whatsapp.models import WebhookLog

pytestmark = pytest.mark.django_db


# --- rate limits ----------------------------------------------------------------------------
def test_onboarding_url_is_limited_per_org_with_pt_br_message_and_retry_after(api, settings):
    settings.API_RATE_LIMITS = {"default": 100, "onboarding-url": 3}
    codes = [api.get("/api/v1/whatsapp/onboarding-url").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = api.get("/api/v1/whatsapp/onboarding-url")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["error"].startswith(("Muitas requisições", "Too many requests"))
    assert api.get("/api/v1/whatsapp/check-connection").status_code == 200  # other view


def test_rate_limiter_outage_fails_open(api, redis_down, settings):
    settings.API_RATE_LIMITS = {"default": 1, "onboarding-url": 1}
    assert [api.get("/api/v1/whatsapp/onboarding-url").status_code for _ in range(3)] == [200] * 3


def test_invalid_signatures_get_429_per_ip_but_valid_deliveries_never(client, settings):
    settings.RATELIMIT_WEBHOOK_INVALID_PER_MINUTE = 5
    body = wire(load("messages_text_inbound.json"))
    forged = [client.post("/api/v1/whatsapp/webhook", data=body, content_type="application/json",
                          HTTP_X_HUB_SIGNATURE_256="sha256=" + "0" * 64).status_code
              for _ in range(7)]
    assert forged == [403] * 5 + [429] * 2
    other_ip = client.post("/api/v1/whatsapp/webhook", data=body, content_type="application/json",
                           REMOTE_ADDR="10.9.9.9")
    assert other_ip.status_code == 403
    assert [post_signed(client, body).status_code for _ in range(3)] == [200] * 3
    assert WebhookLog.objects.count() == 3


SECRETS = ["EAAGm0PX4ZCpsBAKZCZAtoken", "code=AQBxyz123secret", "pin: 123456",
           "Bearer qlk_abcdef123456"]


def test_log_filter_and_json_formatter_scrub_tokens_codes_and_pins():
    from config.logging import JsonFormatter, RequestContextFilter, ScrubSecretsFilter

    record = logging.LogRecord("x", logging.INFO, __file__, 1,
                               "exchange %s %s %s %s", tuple(SECRETS), None)
    ScrubSecretsFilter().filter(record)
    RequestContextFilter().filter(record)
    line = JsonFormatter().format(record)
    parsed = json.loads(line)
    for secret in ("EAAGm0PX4ZCpsBAKZCZAtoken", "AQBxyz123secret", "123456", "qlk_abcdef123456"):
        assert secret not in line
    assert parsed["level"] == "INFO" and "request_id" in parsed


def test_sentry_before_send_scrubs_events():
    from config.logging import before_send

    event = {"message": "token EAAGm0PX4ZCpsBAKZCZAtoken",
             "request": {"headers": {"Authorization": "Bearer qlk_abcdef123456"},
                         "query_string": "code=AQBxyz123secret&state=1",
                         "data": {"pin": "123456", "access_token": "x", "ok": "kept"}},
             "exception": {"values": [{"value": "Graph said input_token=EAAB1234567890abc"}]}}
    text = json.dumps(before_send(event, {}))
    for secret in ("EAAGm0PX4ZCpsBAKZCZAtoken", "qlk_abcdef123456", "AQBxyz123secret",
                   "123456", "EAAB1234567890abc"):
        assert secret not in text
    assert "kept" in text


def test_request_id_is_echoed_or_generated(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123-def")["X-Request-ID"] == "abc-123-def"
    generated = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\n")["X-Request-ID"]
    assert len(generated) == 32 and generated != "bad id\n"


# --- health ---------------------------------------------------------------------------------
def test_readyz_reports_beat_freshness(client):
    assert client.get("/readyz").json()["checks"]["beat"].startswith("error")
    assert client.get("/readyz").status_code == 503
    Heartbeat.beat("beat")
    body = client.get("/readyz").json()
    assert body == {"status": "ok", "checks": {"database": "ok", "cache": "ok", "broker": "ok",
                                               "beat": "ok"}}
    Heartbeat.objects.update(at=timezone.now() - timedelta(minutes=10))
    assert client.get("/readyz").status_code == 503


def test_readyz_with_redis_down_is_degraded_not_down(client, redis_down):
    Heartbeat.beat("beat")
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["cache"].startswith("error")


def test_health_check_command_exit_code():
    with pytest.raises(SystemExit) as exited:
        call_command("health_check", "--json", stdout=io.StringIO())
    assert exited.value.code == 1
    Heartbeat.beat("beat")
    assert run_command("health_check")["ready"] is True


def test_json_log_lines_carry_request_id_and_org_id(api, org, settings):
    from config.logging import JsonFormatter, RequestContextFilter, ScrubSecretsFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    handler.addFilter(ScrubSecretsFilter())
    logging.getLogger("config.ratelimit").addHandler(handler)
    settings.API_RATE_LIMITS = {"default": 100, "onboarding-url": 0}
    try:
        response = api.get("/api/v1/whatsapp/onboarding-url",
                           HTTP_X_REQUEST_ID="req-1234567890")
    finally:
        logging.getLogger("config.ratelimit").removeHandler(handler)
    assert response.status_code == 429 and response["X-Request-ID"] == "req-1234567890"
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["request_id"] == "req-1234567890" and line["org_id"] == str(org.pk)
    assert line["level"] == "WARNING" and "Rate limit hit" in line["message"]
