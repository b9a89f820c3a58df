"""The support back-office: dashboards, orphan claim, permissions of the support group."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditLog
from tests.factories import ConnectionFactory, OnboardingFactory, OrganizationFactory, UserFactory
from tests.meta import load, post_signed
from whatsapp.models import Connection, Onboarding, WebhookLog
from whatsapp.webhooks.process import webhook_process

pytestmark = pytest.mark.django_db


@pytest.fixture
def orphan(client) -> Connection:
    assert post_signed(client, load("account_update_partner_added.json")).status_code == 200
    webhook_process(WebhookLog.objects.latest("id").pk)
    return Connection.objects.orphans().get()


def test_dashboard_shows_the_funnel(support, org):
    now = timezone.now()
    OnboardingFactory(organization=org, status=Onboarding.Status.COMPLETED,
                      completed_at=now)
    OnboardingFactory(organization=org, status=Onboarding.Status.CANCELLED,
                      current_step="PHONE_NUMBER_SETUP")
    OnboardingFactory(organization=org, status=Onboarding.Status.FAILED, error_code="2655093")
    OnboardingFactory(organization=org)
    ConnectionFactory(organization=org, connected_at=now - timedelta(days=3))

    html = support.get("/admin/").content.decode()

    assert 'data-kpi="started">4<' in html
    assert 'data-kpi="completed">1<' in html
    assert "25,0%" in html  # 1 of 4, pt-BR decimal comma
    # Meta's step by its pt-BR name; Meta's error codes stay codes (support searches them).
    assert "Adicionando o número de telefone" in html and "PHONE_NUMBER_SETUP" not in html
    assert "2655093" in html
    assert "Funil de onboarding" in html


def test_dashboard_filters_by_organization_and_period(support, org):
    other = OrganizationFactory()
    OnboardingFactory(organization=other)
    OnboardingFactory(organization=org, created_at=timezone.now())
    html = support.get("/admin/", {"org": str(org.pk), "period": "7"}).content.decode()
    assert 'data-kpi="started">1<' in html


def test_support_claims_an_orphan_with_a_confirmation_step(support, orphan, org,
                                                           django_capture_on_commit_callbacks):
    url = f"/admin/whatsapp/orphanconnection/{orphan.pk}/claim/"
    page = support.get(url).content.decode()
    assert orphan.waba_id in page and "PARTNER_ADDED" in page  # the raw event is shown

    review = support.post(url, {"organization": str(org.pk)}).content.decode()
    assert org.name in review and "confirm-claim" in review
    assert Connection.objects.get(pk=orphan.pk).organization is None  # nothing yet

    with django_capture_on_commit_callbacks() as callbacks:
        response = support.post(url, {"organization": str(org.pk), "confirm": "1"})
    assert response.status_code == 302
    claimed = Connection.objects.get(pk=orphan.pk)
    assert claimed.organization == org
    assert claimed.status == Connection.Status.CONNECTING
    assert claimed.attributed_by == "claim"
    entry = AuditLog.objects.get(action=AuditLog.Action.WABA_CLAIMED)
    assert entry.actor == support.user and entry.organization == org
    assert len(callbacks) == 1  # the normal pipeline is enqueued
    # It is no longer an orphan: a second claim is refused.
    assert support.get(url).status_code == 404


def test_staff_without_the_support_group_cannot_claim(client, orphan, org):
    client.force_login(UserFactory(is_staff=True))
    url = f"/admin/whatsapp/orphanconnection/{orphan.pk}/claim/"
    assert client.post(url, {"organization": str(org.pk), "confirm": "1"}).status_code == 403
    assert Connection.objects.get(pk=orphan.pk).organization is None


def test_support_reads_everything_but_never_a_token(support, org):
    connection = ConnectionFactory(organization=org, with_token=True, token="EAAG-super-secret")
    for url in ["/admin/whatsapp/connection/",
                f"/admin/whatsapp/connection/{connection.pk}/change/",
                "/admin/whatsapp/webhooklog/", "/admin/whatsapp/webhooklog/dashboard/",
                "/admin/audit/auditlog/", "/admin/whatsapp/orphanconnection/",
                "/admin/organizations/organization/"]:
        response = support.get(url)
        assert response.status_code == 200, url
        assert b"EAAG-super-secret" not in response.content
        assert connection.access_token_encrypted.encode() not in response.content


def test_support_cannot_edit_audit_entries_or_flags(support, org):
    from audit.services import audit_record

    entry = audit_record(action=AuditLog.Action.WHATSAPP_CONNECTED, organization=org, target="x")
    change = support.post(f"/admin/audit/auditlog/{entry.pk}/change/", {"target": "forged"})
    assert change.status_code in (302, 403)
    assert AuditLog.objects.get(pk=entry.pk).target == "x"
    assert support.post(f"/admin/audit/auditlog/{entry.pk}/delete/", {"post": "yes"}
                        ).status_code == 403
    assert support.get("/admin/whatsapp/featureflag/add/").status_code == 403


def test_failed_webhooks_dashboard_counts(support):
    now = timezone.now()
    WebhookLog.objects.create(raw_body=b"{}", body_sha256="a", status=WebhookLog.Status.DEAD,
                              fields=["messages"], last_error="KeyError: 'x'\ntrace",
                              received_at=now - timedelta(hours=5))
    WebhookLog.objects.create(raw_body=b"{}", body_sha256="b", status=WebhookLog.Status.FAILED,
                              fields=["messages", "history"], last_error="KeyError: 'x'")
    html = support.get("/admin/whatsapp/webhooklog/dashboard/").content.decode()
    assert 'data-kpi="dead">1<' in html and 'data-kpi="failed">1<' in html
    assert "KeyError: &#x27;x&#x27;" in html
    assert 'data-kpi="oldest">5,0 h<' in html


def test_staff_api(client, support, org):
    client_anon = client.__class__()
    assert client_anon.get("/api/admin/whatsapp/failed-webhooks").status_code in (401, 403)
    assert support.get("/api/admin/whatsapp/failed-webhooks").status_code == 200
    body = support.get("/api/admin/whatsapp/status", {"org": org.slug}).json()
    assert body["organization_id"] == str(org.pk)
    assert support.get("/api/admin/whatsapp/status", {"org": "nope"}).status_code == 404


def test_support_rechecks_a_token_from_the_connection_list(support, org):
    import responses

    connection = ConnectionFactory(organization=org, with_token=True, token="EAAG-revoked")
    with responses.RequestsMock() as graph:
        graph.get("https://graph.facebook.com/v25.0/debug_token",
                  json={"data": {"is_valid": False}})
        response = support.post("/admin/whatsapp/connection/", {
            "action": "check_token", "_selected_action": [str(connection.pk)]}, follow=True)
    assert response.status_code == 200
    assert f"{connection.waba_id}: invalid" in response.content.decode()
    assert Connection.objects.get(pk=connection.pk).token_status == "invalid"
    assert AuditLog.objects.get(action=AuditLog.Action.TOKEN_INVALIDATED).actor_label == (
        "token-health")


def test_support_disconnect_asks_for_confirmation(support, org):
    connection = ConnectionFactory(organization=org)
    data = {"action": "disconnect_selected", "_selected_action": [str(connection.pk)]}
    page = support.post("/admin/whatsapp/connection/", data)
    assert page.status_code == 200 and "confirm-disconnect" in page.content.decode()
    assert Connection.objects.get(pk=connection.pk).status == Connection.Status.CONNECTED

    support.post("/admin/whatsapp/connection/", {**data, "confirm": "1", "reason": "fraude"})
    connection.refresh_from_db()
    assert connection.status == Connection.Status.DISCONNECTED
    assert connection.disconnect_reason == "support: fraude"
    assert AuditLog.objects.get(action=AuditLog.Action.WHATSAPP_DISCONNECTED).actor == support.user
