"""Issue 14 §1: the owner business comes only from Meta and decides only when it is unambiguous.

Through the real callback and webhook URLs (real signatures); Meta's Graph answered at the HTTP
layer. The end-to-end takeover through the sandbox is tests/e2e/test_tenant_takeover.py.
"""

import importlib

import pytest
import responses
from django.apps import apps

from audit.models import AuditLog
from tests.factories import (
    ConnectionFactory,
    OnboardingFactory,
    OrganizationFactory,
    PhoneNumberFactory,
)
from tests.ingest_support import deliver
from tests.meta import partner_added
from whatsapp.models import Connection, PhoneNumber
from whatsapp.onboarding.pipeline import pipeline_run

pytestmark = pytest.mark.django_db
G = "https://graph.facebook.com/v25.0"
CALLBACK = "/api/v1/whatsapp/embedded-signup/callback"
WABA, PHONE, PHONE2 = "102000000000777", "304000000000777", "304000000000778"
OWN_BUSINESS, VICTIM_BUSINESS = "203000000000777", "203000000000999"


def graph_mock(rsps, *, owner: str | None = OWN_BUSINESS) -> None:
    rsps.get(f"{G}/oauth/access_token", json={"access_token": "EAAattacker"})
    rsps.get(f"{G}/debug_token", json={"data": {
        "is_valid": True, "expires_at": 0,
        "granular_scopes": [{"scope": "whatsapp_business_management", "target_ids": [WABA]}]}})
    if owner is None:
        rsps.get(f"{G}/{WABA}", status=500, json={"error": {"code": 2, "message": "down"}})
    else:
        rsps.get(f"{G}/{WABA}", json={"owner_business_info": {"name": "Dona", "id": owner},
                                      "id": WABA})


def finish(api, org, admin_user, **extra):
    onboarding = OnboardingFactory(organization=org, created_by=admin_user)
    body = {"state": str(onboarding.tracking_code), "event": "FINISH", "code": "c-1",
            "wabaId": WABA, "businessId": VICTIM_BUSINESS, **extra}
    return api.post(CALLBACK, body, format="json")


def test_callback_stores_metas_owner_never_the_browsers_business_id(api, org, admin_user):
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        graph_mock(rsps)
        response = finish(api, org, admin_user)
        asked = [c.request.url for c in rsps.calls if f"/{WABA}?" in c.request.url]

    assert response.status_code == 200, response.content
    connection = Connection.objects.get(waba_id=WABA)
    assert connection.owner_business_id == OWN_BUSINESS
    assert connection.owner_business_source == Connection.OwnerSource.GRAPH
    assert asked and "fields=owner_business_info" in asked[0]


def test_callback_without_metas_answer_leaves_the_owner_unknown(api, org, admin_user):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        graph_mock(rsps, owner=None)
        response = finish(api, org, admin_user)

    assert response.status_code == 200, response.content  # the token proved the WABA
    connection = Connection.objects.get(waba_id=WABA)
    assert (connection.owner_business_id, connection.owner_business_source) == ("", "")


def test_metas_owner_in_the_webhook_replaces_a_stored_one(client, org):
    ConnectionFactory(organization=org, waba_id=WABA, owner_business_id=VICTIM_BUSINESS,
                      owner_business_source=Connection.OwnerSource.UNPROVEN,
                      status=Connection.Status.CONNECTING)
    deliver(client, partner_added(waba_id=WABA, owner=OWN_BUSINESS))

    connection = Connection.objects.get(waba_id=WABA)
    assert connection.organization == org
    assert connection.owner_business_id == OWN_BUSINESS
    assert connection.owner_business_source == Connection.OwnerSource.WEBHOOK


def test_owner_business_proven_for_two_organizations_is_an_orphan(client):
    for waba in ("102000000000001", "102000000000002"):
        ConnectionFactory(organization=OrganizationFactory(), waba_id=waba,
                          owner_business_id=VICTIM_BUSINESS)
    deliver(client, partner_added(waba_id=WABA, owner=VICTIM_BUSINESS))

    connection = Connection.objects.get(waba_id=WABA)
    assert connection.is_orphan
    assert connection.error_message == "orphan: ambiguous_owner_business"
    audit = AuditLog.objects.get(action=AuditLog.Action.WABA_ORPHANED)
    assert audit.metadata["reason"] == "ambiguous_owner_business"


def test_an_unproven_owner_never_attributes(client, org):
    ConnectionFactory(organization=org, waba_id="102000000000001",
                      owner_business_id=VICTIM_BUSINESS,
                      owner_business_source=Connection.OwnerSource.UNPROVEN)
    deliver(client, partner_added(waba_id=WABA, owner=VICTIM_BUSINESS))

    assert Connection.objects.get(waba_id=WABA).is_orphan


def test_one_organization_proven_for_the_owner_still_gets_its_new_waba(client, org):
    ConnectionFactory(organization=org, waba_id="102000000000001",
                      owner_business_id=VICTIM_BUSINESS)
    ConnectionFactory(organization=org, waba_id="102000000000002",
                      owner_business_id=VICTIM_BUSINESS)
    deliver(client, partner_added(waba_id=WABA, owner=VICTIM_BUSINESS))

    connection = Connection.objects.get(waba_id=WABA)
    assert (connection.organization, connection.attributed_by) == (org, "owner_business")


def test_hosted_token_is_fetched_only_for_an_owner_meta_named(org, settings):
    settings.META_SYSTEM_USER_TOKEN = "EAAsystem"
    connection = ConnectionFactory(organization=org, waba_id=WABA,
                                   owner_business_id=VICTIM_BUSINESS,
                                   owner_business_source=Connection.OwnerSource.UNPROVEN,
                                   status=Connection.Status.CONNECTING)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(f"{G}/{VICTIM_BUSINESS}/system_user_access_tokens",
                  json={"access_token": "EAAvictim"})
        result = pipeline_run(connection.pk)
        fetched = [c for c in rsps.calls if "system_user_access_tokens" in c.request.url]

    assert result == "error"
    assert not fetched
    connection.refresh_from_db()
    assert connection.access_token_encrypted == ""
    assert (connection.status, connection.error_code) == ("error", "owner_business_unproven")


def test_a_number_of_another_waba_relayed_as_phone_number_id_is_never_picked(api, org,
                                                                            admin_user):
    """Not exploitable, kept that way: the pipeline chooses only among the numbers Graph lists
    for the proven WABA, so a relayed id of another tenant's number changes nothing."""
    victims = PhoneNumberFactory(phone_number_id="304000000000999")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        graph_mock(rsps)
        rsps.post(f"{G}/{WABA}/subscribed_apps", json={"success": True})
        rsps.get(f"{G}/{WABA}/phone_numbers", json={"data": [
            {"id": PHONE, "display_phone_number": "5511940000001"},
            {"id": PHONE2, "display_phone_number": "5511940000002"}]})
        response = finish(api, org, admin_user, phoneNumberId=victims.phone_number_id)
        assert response.status_code == 200, response.content
        assert pipeline_run(response.json()["connection_id"]) == "awaiting_phone_selection"

    victims.refresh_from_db()
    assert victims.connection.organization == victims.organization != org
    assert victims.status == PhoneNumber.Status.CONFIGURED
    assert not PhoneNumber.objects.filter(organization=org,
                                          status=PhoneNumber.Status.CONFIGURING).exists()


def test_migration_marks_only_webhook_backed_owners_as_proven():
    migration = importlib.import_module(
        "whatsapp.migrations.0010_connection_owner_business_source")
    backed = ConnectionFactory(waba_id=WABA, owner_business_id=OWN_BUSINESS,
                               owner_business_source="",
                               source_event=partner_added(waba_id=WABA, owner=OWN_BUSINESS))
    browser = ConnectionFactory(owner_business_id=VICTIM_BUSINESS, owner_business_source="",
                                source_event=None)
    contradicted = ConnectionFactory(
        owner_business_id=VICTIM_BUSINESS, owner_business_source="",
        source_event=partner_added(waba_id="102000000000555", owner=OWN_BUSINESS))
    none = ConnectionFactory(owner_business_id="", owner_business_source="")

    migration.classify_owners(apps, None)

    sources = {c.pk: c.owner_business_source for c in Connection.objects.all()}
    assert sources == {backed.pk: "webhook", browser.pk: "unproven",
                       contradicted.pk: "unproven", none.pk: ""}
