"""Ops code in-process: retries and leases, replay, token health, alerts, rate limits, logs,
health and the ops commands. Worker/broker/DB fault tests live in tests/reliability/."""

import io
import json
import logging
from datetime import timedelta
from unittest import mock

import pytest
import responses
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AuditLog
from ops.alerts import alert_set, alerts_evaluate
from ops.models import AlertState, Heartbeat
from whatsapp.core import crypto
from whatsapp.models import Connection, WebhookLog
from whatsapp.onboarding.token_health import tokens_check
from whatsapp.webhooks import intake, process
from whatsapp.webhooks.dispatch import FIELD_HANDLERS

from .factories import ConnectionFactory, OnboardingFactory
from .meta import load, post_signed, wire

pytestmark = pytest.mark.django_db
GRAPH = f"{settings.META_GRAPH_API_URL}/{settings.META_GRAPH_API_VERSION}"


def run(*args) -> dict:
    out = io.StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue())


def stored(body: dict | None = None) -> WebhookLog:
    raw = wire(body or load("messages_text_inbound.json"))
    return WebhookLog.objects.get(pk=intake.webhook_store(body=raw, headers={}))


# --- processing: backoff, leases, poison pills ----------------------------------------------
def test_retry_delay_grows_exponentially_with_jitter_and_is_capped(settings):
    settings.WHATSAPP_WEBHOOK_RETRY_BASE_SECONDS = 30
    settings.WHATSAPP_WEBHOOK_RETRY_MAX_SECONDS = 1800
    for attempt, ceiling in [(1, 30), (2, 60), (3, 120), (10, 1800)]:
        delays = {process.retry_delay(attempt).total_seconds() for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered


def test_failing_handler_retries_with_backoff_then_dies_with_its_error(settings):
    settings.WHATSAPP_WEBHOOK_MAX_ATTEMPTS = 3
    log = stored()
    with mock.patch.dict(FIELD_HANDLERS, {"messages": mock.Mock(side_effect=KeyError("boom"))}):
        assert process.webhook_process(log.pk) == WebhookLog.Status.FAILED
        log.refresh_from_db()
        assert log.attempts == 1 and "KeyError" in log.last_error and log.next_attempt_at
        assert bytes(log.raw_body) == wire(load("messages_text_inbound.json"))
        assert process.webhook_process(log.pk) == WebhookLog.Status.FAILED
        assert process.webhook_process(log.pk) == WebhookLog.Status.DEAD
    log.refresh_from_db()
    assert (log.status, log.attempts, log.next_attempt_at) == ("dead", 3, None)
    assert "boom" in log.last_error and "Traceback" in log.traceback


def test_expired_lease_is_retaken_exactly_once_and_the_stale_attempt_cannot_commit():
    log = stored()
    assert log.claim(lease=timedelta(seconds=-1))  # a first attempt whose lease already expired
    stale = WebhookLog.objects.get(pk=log.pk)
    second, third = WebhookLog.objects.get(pk=log.pk), WebhookLog.objects.get(pk=log.pk)
    assert second.claim(lease=timedelta(minutes=5))
    assert not third.claim(lease=timedelta(minutes=5))
    # The first attempt finishing late is fenced off by the lease it no longer holds.
    assert process._owned(stale).update(status="processed") == 0
    assert process._owned(second).update(status="processed") == 1


def test_worker_dying_on_every_attempt_ends_dead_not_in_a_loop(settings):
    settings.WHATSAPP_WEBHOOK_MAX_ATTEMPTS = 2
    log = stored()
    for _ in range(2):  # the worker dies mid-task: claimed, never finished
        assert WebhookLog.objects.get(pk=log.pk).claim(lease=timedelta(seconds=-1))
    assert log.pk in set(WebhookLog.objects.due().values_list("pk", flat=True))
    assert process.webhook_process(log.pk) == WebhookLog.Status.DEAD
    log.refresh_from_db()
    assert log.status == "dead" and "Abandoned" in log.last_error


# --- replay ---------------------------------------------------------------------------------
def test_replay_command_selects_resets_enqueues_and_audits(django_capture_on_commit_callbacks):
    dead, processed, other = stored(), stored(), stored(load("account_update_partner_added.json"))
    WebhookLog.objects.filter(pk=dead.pk).update(status="dead", attempts=8, last_error="X",
                                                 traceback="tb", fields=["messages"])
    WebhookLog.objects.filter(pk=processed.pk).update(status="processed", fields=["messages"])
    dry = run("replay_webhooks", "--dead", "--dry-run")
    assert dry == {"dry_run": True, "matched": 1, "ids": [dead.pk]}
    with mock.patch("whatsapp.tasks.process_webhook.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            result = run("replay_webhooks", "--field", "messages", "--since", "1h")
    assert result["replayed"] == 2 and sorted(result["ids"]) == sorted([dead.pk, processed.pk])
    assert sorted(c.args[0] for c in delay.call_args_list) == sorted([dead.pk, processed.pk])
    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.last_error, dead.traceback) == ("received", 0, "", "")
    assert bytes(dead.raw_body) == wire(load("messages_text_inbound.json"))
    entry = AuditLog.objects.get(action=AuditLog.Action.WEBHOOK_REPLAYED)
    assert entry.actor_label == "manage.py" and entry.metadata["count"] == 2
    assert WebhookLog.objects.get(pk=other.pk).status == "received"


@pytest.mark.parametrize("args,message", [
    ([], "Select something"),
    (["--ids", "1,x"], "comma-separated numbers"),
    (["--ids", "999999"], "No webhook deliveries with ids"),
    (["--since", "yesterday"], "is not a date"),
])
def test_replay_command_errors_are_clear(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("replay_webhooks", *args)


def test_replaying_a_processed_delivery_is_harmless(client):
    body = load("account_update_partner_added.json")
    post_signed(client, body)
    log = WebhookLog.objects.get()
    assert process.webhook_process(log.pk) == "processed"
    run("replay_webhooks", "--ids", str(log.pk))
    assert process.webhook_process(log.pk) == "processed"
    assert Connection.objects.count() == 1
    assert AuditLog.objects.filter(action=AuditLog.Action.WABA_ORPHANED).count() == 1


def test_admin_shows_dead_delivery_with_error_and_replays_it(client, django_user_model,
                                                             django_capture_on_commit_callbacks):
    staff = django_user_model.objects.create_superuser("ops@q.test", "ops@q.test", "x")
    client.force_login(staff)
    log = stored()
    WebhookLog.objects.filter(pk=log.pk).update(status="dead", last_error="KeyError: 'boom'")
    page = client.get("/admin/whatsapp/webhooklog/?status__exact=dead")
    assert page.status_code == 200 and b"KeyError" in page.content
    assert client.get(f"/admin/whatsapp/webhooklog/{log.pk}/change/").status_code == 200
    with mock.patch("whatsapp.tasks.process_webhook.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/admin/whatsapp/webhooklog/", {
                "action": "replay_selected", "_selected_action": [log.pk]})
    assert response.status_code == 302
    delay.assert_called_once_with(log.pk)
    assert WebhookLog.objects.get(pk=log.pk).status == "received"
    assert AuditLog.objects.get(action="WEBHOOK_REPLAYED").actor == staff
    # The raw row itself stays read-only.
    assert client.post(f"/admin/whatsapp/webhooklog/{log.pk}/change/", {}).status_code == 403


def test_support_finds_a_delivery_by_its_body_hash(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("h@q.test", "h@q.test", "x"))
    wanted, other = stored(), stored(load("account_update_partner_added.json"))
    page = client.get("/admin/whatsapp/webhooklog/", {"q": wanted.body_sha256})
    assert page.status_code == 200
    found = [log.pk for log in page.context["cl"].result_list]
    assert found == [wanted.pk] and other.pk not in found


def test_beat_models_are_in_the_admin(client, django_user_model):
    from django_celery_beat.models import PeriodicTask

    run("setup_schedules")  # normally from the migration; a transactional test may flush it
    client.force_login(django_user_model.objects.create_superuser("s@q.test", "s@q.test", "x"))
    page = client.get("/admin/django_celery_beat/periodictask/")
    assert page.status_code == 200 and b"webhook retry sweep" in page.content
    task = PeriodicTask.objects.get(name="token health")
    form = client.get(f"/admin/django_celery_beat/periodictask/{task.pk}/change/")
    assert form.status_code == 200 and b"ops.tasks.token_health" in form.content
    assert client.get("/admin/ops/alertstate/").status_code == 200


# --- schedules ------------------------------------------------------------------------------
def test_setup_schedules_is_idempotent_and_keeps_admin_edits():
    from django_celery_beat.models import PeriodicTask

    # The data migration created them; a transactional test may have flushed them since.
    run("setup_schedules")
    PeriodicTask.objects.filter(name="webhook retry sweep").update(enabled=False)
    assert set(run("setup_schedules").values()) == {"kept"}
    assert not PeriodicTask.objects.get(name="webhook retry sweep").enabled
    token = PeriodicTask.objects.get(name="token health")
    assert (token.crontab.hour, token.crontab.minute, str(token.crontab.timezone)) == (
        "2", "0", "America/Sao_Paulo")
    assert run("setup_schedules", "--reset")["webhook retry sweep"] == "reset"
    assert PeriodicTask.objects.get(name="webhook retry sweep").enabled
    sweep = PeriodicTask.objects.get(name="webhook retry sweep").interval
    assert 30 <= sweep.every <= 60 and sweep.period == "seconds"


# --- token health ---------------------------------------------------------------------------
def connection_with_token(**kw) -> Connection:
    connection = ConnectionFactory(**kw)
    connection.set_access_token("EAAGtenanttoken123456")
    connection.save()
    return connection


@responses.activate
def test_token_health_valid_invalid_never_expiring_and_transient():
    valid, never, invalid, flaky, revoked = (connection_with_token() for _ in range(5))
    in_20_days = int((timezone.now() + timedelta(days=20)).timestamp())
    answers = {valid.waba_id: {"data": {"is_valid": True, "expires_at": in_20_days}},
               never.waba_id: {"data": {"is_valid": True, "expires_at": 0}},
               invalid.waba_id: {"data": {"is_valid": False, "expires_at": 0}}}
    order = [valid, never, invalid, flaky, revoked]

    def reply(request):
        connection = order.pop(0)
        if connection is flaky:
            return 503, {}, json.dumps({"error": {"code": 2, "message": "Service unavailable"}})
        if connection is revoked:
            return 400, {}, json.dumps({"error": {"code": 190, "message": "expired"}})
        return 200, {}, json.dumps(answers[connection.waba_id])

    responses.add_callback(responses.GET, f"{GRAPH}/debug_token", callback=reply)
    results = {c.waba_id: c.result for c in tokens_check()}
    assert results == {valid.waba_id: "valid", never.waba_id: "valid",
                       invalid.waba_id: "invalid", flaky.waba_id: "error",
                       revoked.waba_id: "invalid"}
    for c in (valid, never, invalid, flaky, revoked):
        c.refresh_from_db()
    assert valid.token_expires_at and abs(valid.token_expires_at.timestamp() - in_20_days) < 1
    assert never.token_expires_at is None and never.token_checked_at
    assert flaky.token_status == "valid"  # transient errors never log a tenant out
    assert invalid.token_status == revoked.token_status == "invalid"
    # The app token (not the tenant's) asks; the tenant token never appears in a URL we log.
    assert "access_token=" in responses.calls[0].request.url
    assert AuditLog.objects.filter(action="TOKEN_INVALIDATED").count() == 2


@responses.activate
def test_token_invalidation_is_audited_once_and_the_tenant_sees_reconnect(api, org):
    connection = connection_with_token(organization=org)
    responses.get(f"{GRAPH}/debug_token", json={"data": {"is_valid": False}})
    run("token_health", "--org", org.slug)
    run("token_health")
    assert AuditLog.objects.filter(action="TOKEN_INVALIDATED").count() == 1
    body = api.get("/api/v1/whatsapp/check-connection").json()
    assert body["status"] == "token_invalid"
    connection.refresh_from_db()
    assert connection.token_status == "invalid"


# --- alerts ---------------------------------------------------------------------------------
def test_alert_is_reported_once_per_change():
    with mock.patch("sentry_sdk.capture_message") as capture:
        assert alert_set("redis_down", active=True, message="Redis does not answer")
        assert not alert_set("redis_down", active=True, message="Redis does not answer")
        assert alert_set("redis_down", active=False)
        assert not alert_set("redis_down", active=False)
    assert [c.args[0] for c in capture.call_args_list] == [
        "ALERT redis_down: Redis does not answer", "RESOLVED redis_down"]


def test_alert_evaluation_covers_spec_conditions(settings):
    now = timezone.now()
    ConnectionFactory(organization=None, status=Connection.Status.ERROR)  # orphan
    expiring = ConnectionFactory(token_status="valid", token_expires_at=now + timedelta(days=5))
    for _ in range(6):
        OnboardingFactory(status="failed")
    for _ in range(6):
        log = stored()
        WebhookLog.objects.filter(pk=log.pk).update(status="dead")
    with mock.patch("sentry_sdk.capture_message") as capture:
        active = {a["key"] for a in alerts_evaluate(now=now)}
        alerts_evaluate(now=now)
    assert {"orphan_waba", "signup_error_rate", "unprocessed_deliveries",
            f"token_expiring_30d:{expiring.waba_id}",
            f"token_expiring_7d:{expiring.waba_id}"} <= active
    assert capture.call_count == len(active)  # second evaluation: no repeats


def test_no_completed_connection_alert_only_in_business_hours():
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("America/Sao_Paulo")
    sunday = timezone.datetime(2026, 11, 22, 11, tzinfo=tz)
    tuesday = timezone.datetime(2026, 11, 24, 11, tzinfo=tz)
    alerts_evaluate(now=sunday)
    assert not AlertState.objects.filter(key="no_completed_connections_24h").exists()
    alerts_evaluate(now=tuesday)
    assert AlertState.objects.get(key="no_completed_connections_24h").active


def test_redis_down_raises_the_alert(redis_down):
    from ops.alerts import redis_check

    assert redis_check() is False
    assert AlertState.objects.get(key="redis_down").active


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


# --- logs -----------------------------------------------------------------------------------

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
    assert run("health_check")["ready"] is True


# --- other commands -------------------------------------------------------------------------
def test_whatsapp_status_for_one_org_and_all(org):
    ConnectionFactory(organization=org)
    one = run("whatsapp_status", "--org", org.slug)
    assert one["organization_id"] == str(org.pk) and len(one["connections"]) == 1
    everything = run("whatsapp_status")
    assert everything["platform"]["connections"] == {"connected": 1}
    with pytest.raises(CommandError, match="No organization"):
        call_command("whatsapp_status", "--org", "nope")


def test_expire_onboardings_command():
    OnboardingFactory(expires_at=timezone.now() - timedelta(minutes=1))
    assert run("expire_onboardings") == {"expired": 1}


def test_rotate_encryption_key_reencrypts_tokens_and_pins(settings):
    from whatsapp.models import PhoneNumber

    old_key, new_key = "11" * 32, "22" * 32
    connection = connection_with_token()
    config = PhoneNumber.objects.create(connection=connection, phone_number_id="999",
                                   registration_pin_encrypted=crypto.encrypt("654321"))
    settings.TOKEN_ENCRYPTION_KEY, settings.TOKEN_ENCRYPTION_OLD_KEYS = new_key, [old_key]
    dry = run("rotate_encryption_key", "--dry-run")
    assert dry["rotated"] == 2 and "654321" not in json.dumps(dry)
    result = run("rotate_encryption_key")
    assert result["rotated"] == 2 and result["failed"] == []
    settings.TOKEN_ENCRYPTION_OLD_KEYS = []  # the old key can go now
    connection.refresh_from_db()
    config.refresh_from_db()
    assert connection.get_access_token() == "EAAGtenanttoken123456"
    assert crypto.decrypt(config.registration_pin_encrypted) == "654321"
    assert run("rotate_encryption_key")["rotated"] == 0
    assert AuditLog.objects.filter(action="KEY_ROTATED").count() == 1


# --- subscription reconciliation --------------------------------------------------------------
@responses.activate
def test_subscription_reconciliation_resubscribes_missing_app_and_alerts_once():
    from ops.tasks import reconcile_subscriptions

    ok, lost = connection_with_token(), connection_with_token()
    ours = {"whatsapp_business_api_data": {"id": settings.META_APP_ID, "name": "Qualifica"}}
    responses.get(f"{GRAPH}/{ok.waba_id}/subscribed_apps", json={"data": [ours]})
    responses.get(f"{GRAPH}/{lost.waba_id}/subscribed_apps", json={"data": []})
    resubscribe = responses.post(f"{GRAPH}/{lost.waba_id}/subscribed_apps",
                                 json={"success": True})
    with mock.patch("sentry_sdk.capture_message") as capture:
        # The beat task: the check re-subscribes, ops alerts once for the WABA that lost it.
        assert reconcile_subscriptions() == {"subscribed": 1, "resubscribed": 1}
        reconcile_subscriptions()
    assert resubscribe.call_count == 2
    assert AlertState.objects.get(key=f"subscription_missing:{lost.waba_id}").active
    assert capture.call_count == 1
    # The tenant's token authenticates the calls, never in the URL.
    assert "EAAGtenanttoken" not in responses.calls[0].request.url


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
