"""Issue 18 §2: the early PARTNER_ADDED of a popup signup is not an orphan; a real one still is.

Through the real webhook URL (signed like Meta) and the browser's callback."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditLog
from tests.factories import OnboardingFactory
from tests.ingest_support import deliver
from tests.meta import graph_signup, partner_added
from whatsapp.models import Connection
from whatsapp.onboarding.attribution import orphans_confirm

pytestmark = pytest.mark.django_db
WABA = "102000000000777"


def actions() -> list[str]:
    return list(AuditLog.objects.order_by("created_at", "id").values_list("action", flat=True))


def callback(api, onboarding):
    return api.post("/api/v1/whatsapp/embedded-signup/callback", {
        "state": str(onboarding.tracking_code), "event": "FINISH", "code": "code-1",
        "wabaId": WABA}, format="json")


def test_partner_added_before_the_callback_awaits_the_browser_then_connects(
        client, api, org, admin_user, graph):
    onboarding = OnboardingFactory(organization=org, created_by=admin_user)
    deliver(client, partner_added(waba_id=WABA))  # Meta echoes no tracking code

    connection = Connection.objects.get(waba_id=WABA)
    assert connection.organization is None
    assert list(Connection.objects.awaiting_browser()) == [connection]
    assert not Connection.objects.confirmed_orphans().exists()
    assert actions() == [AuditLog.Action.WABA_AWAITING_BROWSER]
    entry = AuditLog.objects.get()
    assert str(entry) == "WABA recebida, aguardando confirmação do navegador · waba:" + WABA

    graph_signup(graph, waba=WABA)
    assert callback(api, onboarding).status_code == 200
    connection.refresh_from_db()
    assert connection.organization == org and connection.error_message == ""
    # Long after the grace period, nothing turns the connected WABA into an orphan.
    assert orphans_confirm(now=timezone.now() + timedelta(hours=1)) == []
    assert actions() == [AuditLog.Action.WABA_AWAITING_BROWSER,
                         AuditLog.Action.WHATSAPP_CONNECTED]


def test_awaiting_waba_without_callback_becomes_an_orphan_after_the_grace_period(
        client, org, settings):
    OnboardingFactory(organization=org)
    deliver(client, partner_added(waba_id=WABA))
    connection = Connection.objects.get(waba_id=WABA)

    now = timezone.now()
    assert orphans_confirm(now=now) == []  # within the grace period: still awaiting
    later = now + timedelta(seconds=settings.WHATSAPP_ORPHAN_GRACE_SECONDS + 1)
    assert [c.pk for c in orphans_confirm(now=later)] == [connection.pk]
    assert orphans_confirm(now=later) == []  # once

    connection.refresh_from_db()
    assert connection.error_message == "orphan: no organization could be matched"
    assert list(Connection.objects.confirmed_orphans()) == [connection]
    orphaned = AuditLog.objects.get(action=AuditLog.Action.WABA_ORPHANED)
    assert orphaned.target == f"waba:{WABA}" and orphaned.metadata["reason"] == "no_match"


def test_partner_added_with_no_pending_signup_is_an_orphan_at_once(client, org):
    OnboardingFactory(organization=org, status="completed")
    OnboardingFactory(organization=org, expires_at=timezone.now() - timedelta(minutes=1))
    deliver(client, partner_added(waba_id=WABA))

    assert actions() == [AuditLog.Action.WABA_ORPHANED]
    assert list(Connection.objects.confirmed_orphans().values_list("waba_id", flat=True)) == [
        WABA]
