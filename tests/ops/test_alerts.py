"""SPEC §7 alerts, each reported once per change, and the subscription check's alert."""

from datetime import timedelta
from unittest import mock

import pytest
import responses
from django.conf import settings
from django.utils import timezone

from ops.alerts import alert_set, alerts_evaluate
from ops.models import AlertState
from tests.factories import ConnectionFactory, OnboardingFactory
from tests.ingest_support import stored
from tests.meta import GRAPH
from whatsapp.models import Connection, WebhookLog

pytestmark = pytest.mark.django_db


# --- alerts ---------------------------------------------------------------------------------
def test_alert_is_reported_once_per_change():
    with mock.patch("sentry_sdk.capture_message") as capture:
        assert alert_set("redis_down", active=True, message="O Redis não responde")
        assert not alert_set("redis_down", active=True, message="O Redis não responde")
        assert alert_set("redis_down", active=False)
        assert not alert_set("redis_down", active=False)
    assert [c.args[0] for c in capture.call_args_list] == [
        "ALERT redis_down: O Redis não responde", "RESOLVED redis_down"]


def test_alert_evaluation_covers_spec_conditions(settings):
    now = timezone.now()
    orphan = ConnectionFactory(organization=None, status=Connection.Status.ERROR)
    expiring = ConnectionFactory(token_status="valid", token_expires_at=now + timedelta(days=5))
    for _ in range(6):
        OnboardingFactory(status="failed")
    for _ in range(6):
        log = stored()
        WebhookLog.objects.filter(pk=log.pk).update(status="dead")
    with mock.patch("sentry_sdk.capture_message") as capture:
        active = {a["key"] for a in alerts_evaluate(now=now)}
        alerts_evaluate(now=now)
    assert {f"orphan_waba:{orphan.waba_id}", "signup_error_rate", "unprocessed_deliveries",
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


# --- subscription reconciliation --------------------------------------------------------------
@responses.activate
def test_subscription_reconciliation_resubscribes_missing_app_and_alerts_once():
    from ops.tasks import reconcile_subscriptions

    ok, lost = ConnectionFactory(with_token=True), ConnectionFactory(with_token=True)
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
