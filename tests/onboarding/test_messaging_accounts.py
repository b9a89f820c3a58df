"""Meta's account model (META-PLATFORM.md §0): `messaging_account_id` and `waac_id` are read
wherever Meta sends them and stored next to the WABA; a number another organization holds is
never taken over by a second WABA listing it (a number shared with several partners)."""

import pytest

from tests.factories import OnboardingFactory, PhoneNumberFactory
from tests.meta import GRAPH, change_value, graph_signup, partner_added
from whatsapp.core.payloads import account_ids
from whatsapp.models import Connection, PhoneNumber
from whatsapp.onboarding.pipeline import pipeline_run

pytestmark = pytest.mark.django_db
CALLBACK = "/api/v1/whatsapp/embedded-signup/callback"
WABA, PHONE = "102000000000101", "304000000000101"


@pytest.mark.parametrize("value", [
    {"messaging_account_id": "105", "waac_id": "106"},
    {"waba_info": {"waba_id": "1", "messaging_account_id": "105", "waac_id": "106"}},
    {"metadata": {"phone_number_id": "3", "messaging_account_id": "105", "waac_id": "106"}},
    # Meta's deprecated alias, until it is gone (Dec 31, 2026).
    {"paid_messaging_account_id": "105", "metadata": {"waac_id": "106"}},
])
def test_account_ids_are_read_wherever_a_value_carries_them(value):
    ids = account_ids(value)
    assert (ids.messaging_account_id, ids.waac_id) == ("105", "106")


def test_todays_deliveries_carry_none():
    ids = account_ids(change_value(partner_added()))
    assert (ids.messaging_account_id, ids.waac_id) == ("", "")


def test_the_popups_waac_id_is_stored_next_to_the_waba(api, org, admin_user, graph):
    graph_signup(graph, waba=WABA)
    onboarding = OnboardingFactory(organization=org, created_by=admin_user)
    response = api.post(CALLBACK, {
        "state": str(onboarding.tracking_code), "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
        "code": "code-123", "wabaId": WABA, "waacId": "106000000000101"}, format="json")

    assert response.status_code == 200, response.json()
    connection = Connection.objects.get()
    assert (connection.waba_id, connection.waac_id, connection.messaging_account_id) == (
        WABA, "106000000000101", "")


def test_a_malformed_waac_id_is_refused_and_changes_nothing(api, org, admin_user):
    onboarding = OnboardingFactory(organization=org, created_by=admin_user)
    response = api.post(CALLBACK, {"state": str(onboarding.tracking_code), "event": "FINISH",
                                   "code": "code-123", "wabaId": WABA,
                                   "waacId": "106; DROP"}, format="json")
    assert response.status_code == 400
    assert not Connection.objects.exists()


def test_a_number_another_organization_holds_is_not_taken_over(api, org, admin_user, graph):
    """A second WABA (another partner's or tenant's account on a shared number) lists the
    number: the tenant holding it keeps it, and the newcomer's pipeline stops for support."""
    held = PhoneNumberFactory(phone_number_id=PHONE)
    graph_signup(graph, waba=WABA)
    graph.get(f"{GRAPH}/{WABA}/phone_numbers", json={"data": [
        {"id": PHONE, "display_phone_number": "5511940001234", "waac_id": "106000000000101"}]})
    onboarding = OnboardingFactory(organization=org, created_by=admin_user)
    response = api.post(CALLBACK, {"state": str(onboarding.tracking_code), "event": "FINISH",
                                   "code": "code-123", "wabaId": WABA}, format="json")
    assert response.status_code == 200, response.json()

    assert pipeline_run(response.json()["connection_id"]) == "error"
    held.refresh_from_db()
    assert held.connection.organization == held.organization != org
    assert held.status == PhoneNumber.Status.CONFIGURED
    assert held.waac_id == ""  # the other WABA's listing wrote nothing on it
    newcomer = Connection.objects.get(waba_id=WABA)
    assert PHONE in newcomer.pipeline_error
    assert (newcomer.status, newcomer.error_code) == ("error", "number_taken")


def test_graphs_number_listing_stores_the_waac(api, org, admin_user, graph):
    graph_signup(graph, waba=WABA)
    graph.get(f"{GRAPH}/{WABA}/phone_numbers", json={"data": [
        {"id": PHONE, "display_phone_number": "5511940001234", "is_on_biz_app": True,
         "waac_id": "106000000000101"}]})
    graph.post(f"{GRAPH}/{PHONE}/smb_app_data", json={"messaging_product": "whatsapp",
                                                     "request_id": "req-1"})
    onboarding = OnboardingFactory(organization=org, created_by=admin_user)
    response = api.post(CALLBACK, {
        "state": str(onboarding.tracking_code), "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
        "code": "code-123", "wabaId": WABA}, format="json")
    pipeline_run(response.json()["connection_id"])
    assert PhoneNumber.objects.get(phone_number_id=PHONE).waac_id == "106000000000101"
