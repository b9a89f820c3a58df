"""account_update through the real webhook URL: attribution, orphans, disconnections."""

import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from audit.models import AuditLog
from tests.factories import ConnectionFactory, OnboardingFactory, OrganizationFactory
from tests.ingest_support import deliver
from tests.meta import load, partner_added
from whatsapp.models import Connection, Onboarding
from whatsapp.onboarding.signup import onboarding_start

pytestmark = pytest.mark.django_db


def audits(action: str) -> int:
    return AuditLog.objects.filter(action=action).count()


def test_partner_added_with_tracking_code_connects_the_org(
    client, org, admin_user, django_capture_on_commit_callbacks
):
    onboarding = onboarding_start(organization=org, user=admin_user, redirect_path="/x")
    key = f"whatsapp:onboarding:{onboarding.tracking_code}"
    assert cache.get(key)

    with django_capture_on_commit_callbacks(execute=True):
        log = deliver(client, partner_added(tracking_code=onboarding.tracking_code))

    connection = Connection.objects.get()
    assert connection.organization == org
    assert connection.waba_id == "102000000000101"  # waba_info, never entry.id
    assert connection.owner_business_id == "203000000000101"
    assert connection.partner_business_id == "810000000000001"
    # Bound to the org; the onboarding pipeline (token, numbers…) takes it to "connected".
    assert connection.status == Connection.Status.CONNECTING
    assert connection.tracking_code_used == onboarding.tracking_code
    assert connection.attributed_by == "tracking_code"
    onboarding.refresh_from_db()
    assert onboarding.status == Onboarding.Status.COMPLETED
    assert onboarding.waba_id == "102000000000101"
    assert cache.get(key) is None
    assert log.organization == org
    entry = AuditLog.objects.get(action=AuditLog.Action.WHATSAPP_CONNECTED)
    assert entry.organization == org
    assert entry.metadata["waba_id"] == "102000000000101"


def test_redelivery_does_not_audit_twice(client, org, admin_user):
    onboarding = onboarding_start(organization=org, user=admin_user, redirect_path="/x")
    body = partner_added(tracking_code=onboarding.tracking_code)
    deliver(client, body)
    deliver(client, body)
    assert Connection.objects.count() == 1
    assert audits(AuditLog.Action.WHATSAPP_CONNECTED) == 1


def test_partner_added_without_any_correlation_is_an_orphan(client):
    log = deliver(client, load("account_update_partner_added.json"))

    connection = Connection.objects.get()
    assert connection.organization is None
    assert connection.status == Connection.Status.ERROR
    assert connection.is_orphan
    assert log.organization is None
    assert audits(AuditLog.Action.WABA_ORPHANED) == 1
    assert audits(AuditLog.Action.WHATSAPP_CONNECTED) == 0


def test_waba_already_bound_by_the_browser_callback_is_attributed(client, org):
    ConnectionFactory(organization=org, waba_id="102000000000101",
                      status=Connection.Status.CONNECTING, owner_business_id="")
    deliver(client, load("account_update_partner_added.json"))

    connection = Connection.objects.get()
    assert connection.organization == org
    assert connection.attributed_by == "waba"
    assert connection.owner_business_id == "203000000000101"
    # The binding was audited when it happened; the webhook only confirms it.
    assert audits(AuditLog.Action.WHATSAPP_CONNECTED) == 0


def test_owner_business_of_an_earlier_connection_is_attributed(client, org):
    ConnectionFactory(organization=org, waba_id="999", owner_business_id="203000000000101",
                      status=Connection.Status.DISCONNECTED)
    deliver(client, load("account_update_partner_added.json"))

    connection = Connection.objects.active().get()
    assert connection.organization == org
    assert connection.attributed_by == "owner_business"


def test_tracking_code_wins_over_owner_business(client, org, admin_user):
    other = OrganizationFactory()
    ConnectionFactory(organization=other, waba_id="999", owner_business_id="203000000000101",
                      status=Connection.Status.DISCONNECTED)
    onboarding = onboarding_start(organization=org, user=admin_user, redirect_path="/x")
    deliver(client, partner_added(tracking_code=onboarding.tracking_code))
    assert Connection.objects.active().get().organization == org


def test_expired_tracking_code_does_not_attach(client, org, api):
    onboarding = OnboardingFactory(organization=org,
                                   expires_at=timezone.now() - timedelta(minutes=1))
    deliver(client, partner_added(tracking_code=onboarding.tracking_code))

    assert Connection.objects.get().organization is None
    onboarding.refresh_from_db()
    assert onboarding.status == Onboarding.Status.EXPIRED
    status = api.get("/api/v1/whatsapp/check-connection").json()
    assert status["status"] == "expired"
    assert status["connected"] is False
    assert status["message"] == "Sessão expirou, tente novamente."


def test_unknown_tracking_code_falls_back_to_orphan(client):
    deliver(client, partner_added(tracking_code=uuid.uuid4()))
    assert Connection.objects.get().organization is None


def test_redis_down_webhook_resolves_the_code_from_the_database(client, org, admin_user,
                                                                 redis_down):
    onboarding = onboarding_start(organization=org, user=admin_user, redirect_path="/x")
    deliver(client, partner_added(tracking_code=onboarding.tracking_code))
    assert Connection.objects.get().organization == org


def test_tracking_code_adopts_an_orphan_created_before(client, org, admin_user):
    deliver(client, load("account_update_partner_added.json"))
    assert Connection.objects.get().organization is None
    onboarding = onboarding_start(organization=org, user=admin_user, redirect_path="/x")
    deliver(client, partner_added(tracking_code=onboarding.tracking_code))
    assert Connection.objects.get().organization == org


def test_waba_of_another_org_is_never_stolen(client, org, admin_user):
    other = OrganizationFactory()
    ConnectionFactory(organization=other, waba_id="102000000000101")
    onboarding = onboarding_start(organization=org, user=admin_user, redirect_path="/x")
    deliver(client, partner_added(tracking_code=onboarding.tracking_code))
    assert Connection.objects.get().organization == other


@pytest.mark.parametrize("fixture,waba_id,reason", [
    ("account_update_partner_removed.json", None, "PARTNER_REMOVED"),
    ("account_update_partner_removed_coexistence.json", None, "PARTNER_REMOVED"),
    ("account_update_partner_removed_coexistence_guide_shape.json", None, "PARTNER_REMOVED"),
    ("account_update_partner_app_uninstalled.json", None, "PARTNER_APP_UNINSTALLED"),
    ("account_update_account_offboarded.json", None, "ACCOUNT_OFFBOARDED"),
])
def test_disconnection_events(client, org, fixture, waba_id, reason):
    body = load(fixture)
    from tests.meta import wire
    from whatsapp.core.payloads import AccountUpdate, parse_delivery

    update = AccountUpdate.from_change(parse_delivery(wire(body)).changes[0])
    connection = ConnectionFactory(organization=org, waba_id=update.waba_id, with_token=True,
                                   token="EAAsecret-token-value")

    deliver(client, body)
    deliver(client, body)  # duplicate delivery

    connection.refresh_from_db()
    assert connection.status == Connection.Status.DISCONNECTED
    assert connection.disconnect_reason.startswith(reason)
    assert connection.access_token_encrypted == ""
    assert audits(AuditLog.Action.WHATSAPP_DISCONNECTED) == 1


def test_reconnecting_after_removal_creates_a_new_live_connection(client, org, admin_user):
    for _ in range(2):
        onboarding = onboarding_start(organization=org, user=admin_user, redirect_path="/x")
        deliver(client, partner_added(tracking_code=onboarding.tracking_code))
        deliver(client, load("account_update_partner_removed.json") | {})
    assert audits(AuditLog.Action.WHATSAPP_CONNECTED) == 2
