"""Embedded Signup v4 in a real browser: the settings page launches the sandbox popup with the
server's extras (META_EMBEDDED_SIGNUP_VERSION), for coexistence and for a new Cloud API number,
and a v3 launch no longer reaches coexistence. Screenshots: artifacts/screenshots/."""

import pytest

from tests.e2e.conftest import shot
from tests.e2e.test_connect_whatsapp import (
    CLOUD_ONE,
    COEXISTENCE,
    open_signup,
    wait_status,
    walk,
)
from tests.support import wait_for
from whatsapp.models import Connection, Onboarding, PhoneNumber

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

V4 = {"setup": {}, "featureType": "whatsapp_business_app_onboarding", "version": "v4"}


def launched_extras(sandbox) -> dict:
    """The `extras` the sandbox's dialog received from FB.login (Meta's side of the launch)."""
    (signup,) = wait_for(lambda: sandbox.state()["signups"], message="the sandbox signup")
    return signup["extras"]


WAAC = "106000000000777"


def future_finish_message(route) -> None:
    """Rewrites the sandbox's finish page so its WA_EMBEDDED_SIGNUP message carries what a
    later Meta may send: another `version`, unknown keys, `data.waac_id`."""
    response = route.fetch()
    body = response.text()
    if 'id="es-message"' in body:
        body = (body.replace('\\"version\\": 3}', '\\"version\\": \\"v4\\", '
                             '\\"session_id\\": \\"abc\\", \\"flow\\": {\\"x\\": 1}}')
                .replace('{\\"data\\": {', f'{{\\"data\\": {{\\"waac_id\\": \\"{WAAC}\\", '))
        assert WAAC in body and '\\"version\\": \\"v4\\"' in body, body
    route.fulfill(response=response, body=body)


def to_number_step(popup) -> None:
    popup.click("#next")  # business
    popup.click("#next")  # WABA
    popup.get_by_role("heading", name="Adicione um número de telefone").wait_for()


def test_v4_popup_connects_the_whatsapp_business_app(admin_page, sandbox, worker):
    page = admin_page
    popup = open_signup(page)
    wait_status(page, "connecting")
    onboarding = Onboarding.objects.get()
    assert launched_extras(sandbox) == {
        **V4, "sessionInfo": {"trackingCode": str(onboarding.tracking_code)}}
    to_number_step(popup)
    # v4 + featureType: Meta offers the existing app, preselected.
    assert popup.get_by_label(COEXISTENCE).is_checked()
    assert "Cadastro incorporado v4" in popup.locator("#es-version").inner_text()
    shot(popup, "v4-01-popup-coexistence-offered")
    popup.get_by_role("button", name="Voltar").click()
    popup.get_by_role("button", name="Voltar").click()
    # Meta documents no v4 shape of WA_EMBEDDED_SIGNUP: the finish message reaches the page with
    # another `version`, keys it does not know, and the account model's `waac_id`.
    popup.route("**/sandbox/dialog/**", future_finish_message)
    walk(popup, COEXISTENCE)

    wait_status(page, "connected")
    shot(page, "v4-02-connected-coexistence")
    connection = Connection.objects.get()
    assert (connection.organization, connection.is_coexistence, connection.finish_event) == (
        page.organization, True, "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING")
    assert connection.waac_id == WAAC
    assert PhoneNumber.objects.get().registration_status == (
        PhoneNumber.RegistrationStatus.NOT_NEEDED)


def test_v4_popup_connects_a_new_cloud_api_number(admin_page, sandbox, worker):
    page = admin_page
    popup = open_signup(page)
    walk(popup, CLOUD_ONE)

    wait_status(page, "connected")
    shot(page, "v4-03-connected-cloud-api")
    assert launched_extras(sandbox)["version"] == "v4"
    connection = Connection.objects.get()
    assert (connection.organization, connection.is_coexistence, connection.finish_event) == (
        page.organization, False, "FINISH")
    number = wait_for(lambda: PhoneNumber.objects.filter(
        registration_status=PhoneNumber.RegistrationStatus.REGISTERED).first(), timeout=30,
        message="the Cloud API number's registration")
    assert page.locator("#wa-connected-numbers").inner_text().startswith("+55")
    assert number.connection == connection


def test_v3_popup_only_offers_a_new_number(admin_page, sandbox, settings):
    """A deployment left on v3 shows the regression: Meta's popup has no coexistence option."""
    settings.META_EMBEDDED_SIGNUP_VERSION = "v3"
    page = admin_page
    page.reload()
    popup = open_signup(page)
    extras = launched_extras(sandbox)
    assert (extras["version"], extras["sessionInfoVersion"]) == ("v3", "3")
    to_number_step(popup)
    assert popup.get_by_label(COEXISTENCE).count() == 0
    assert popup.locator("#coex_number").count() == 0
    assert popup.get_by_label(CLOUD_ONE).is_checked()
    shot(popup, "v4-04-v3-launch-cloud-api-only")
    popup.click("#cancel")
    wait_status(page, "cancelled")
