"""The sandbox's pages over HTTP: the listing, the SDK script and the launch checks."""

import json

import pytest
from django.conf import settings

from tests.meta import change_value

pytestmark = pytest.mark.django_db(transaction=True)


def test_listing_shows_what_the_sandbox_holds_with_tokens_masked(sandbox):
    result, token = sandbox.connected("coexistence")
    sandbox.wait_idle()
    page = sandbox.http.get(f"{sandbox.base}/sandbox/", timeout=20)
    assert page.status_code == 200
    html = page.text
    assert "Sandbox da Meta" in html and "Webhooks enviados" in html
    assert result["waba_id"] in html and result["phone_number_ids"][0] in html
    assert token not in html and token[:4] + "…" + token[-4:] in html
    assert result["code"] not in html
    assert "Entregue (200)" in html


def test_sdk_script_defines_fb_and_points_at_the_dialog(sandbox):
    response = sandbox.http.get(f"{sandbox.base}/sandbox/sdk.js", timeout=20)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/javascript")
    assert "window.FB" in response.text
    assert f'"{sandbox.base}/sandbox/dialog/"' in response.text


def test_signup_pages_refuse_a_wrong_app_and_a_popup_without_origin(sandbox):
    wrong = sandbox.http.get(f"{sandbox.base}/sandbox/onboard/",
                             params={"app_id": "999", "config_id": "1"}, timeout=20)
    assert wrong.status_code == 400 and "app_id" in wrong.text
    no_origin = sandbox.http.get(f"{sandbox.base}/sandbox/dialog/", timeout=20, params={
        "app_id": settings.META_APP_ID, "config_id": settings.META_CONFIG_ID})
    assert no_origin.status_code == 400


def test_hosted_link_walk_ends_with_partner_added_only(sandbox):
    """Hosted link driven with plain HTTP form posts (CSRF included), as a browser would."""
    sandbox.switches(echo_tracking_code=True)
    extras = '{"featureType":"whatsapp_business_app_onboarding","sessionInfoVersion":"3",' \
             '"version":"v3","sessionInfo":{"trackingCode":"11111111-2222-4333-8444-555555555555"}}'
    page = sandbox.http.get(f"{sandbox.base}/sandbox/onboard/", timeout=20, params={
        "app_id": settings.META_APP_ID, "config_id": settings.META_CONFIG_ID, "extras": extras})
    assert page.status_code == 200 and "Escolha seu portfólio empresarial" in page.text
    step_url = page.url
    answers = [{"business": "new", "business_name": "Imobiliária Lua"}, {"waba": "new"},
               {"scenario": "cloud_one"}, {}]
    for answer in answers:
        token = sandbox.http.cookies["csrftoken"]
        page = sandbox.http.post(step_url, timeout=20, headers={"Referer": step_url}, data={
            "csrfmiddlewaretoken": token, "action": "next", **answer})
        assert page.status_code == 200, page.text[:500]
    assert "Tudo certo!" in page.text and "postMessage" not in page.text

    state = sandbox.wait_idle()
    (delivery,) = state["deliveries"]
    value = change_value(delivery["payload"])
    assert value["event"] == "PARTNER_ADDED"
    assert value["sessionInfo"] == {"trackingCode": "11111111-2222-4333-8444-555555555555"}
    assert state["codes"] == []
    assert state["businesses"][0]["name"] == "Imobiliária Lua"


def _to_number_step(sandbox, extras: dict):
    """Opens the hosted link with `extras` and answers the business and WABA steps."""
    page = sandbox.http.get(f"{sandbox.base}/sandbox/onboard/", timeout=20, params={
        "app_id": settings.META_APP_ID, "config_id": settings.META_CONFIG_ID,
        "extras": json.dumps(extras)})
    step_url = page.url
    for answer in ({"business": "new", "business_name": "Imobiliária Lua"}, {"waba": "new"}):
        page = _post_step(sandbox, step_url, answer)
    assert "Adicione um número de telefone" in page.text
    return step_url, page


def _post_step(sandbox, step_url: str, answer: dict):
    return sandbox.http.post(step_url, timeout=20, headers={"Referer": step_url}, data={
        "csrfmiddlewaretoken": sandbox.http.cookies["csrftoken"], "action": "next", **answer})


COEXISTENCE_LABEL = "Conectar o app WhatsApp Business existente"
SEED_V3 = {"featureType": "whatsapp_business_app_onboarding", "sessionInfoVersion": "3",
           "version": "v3"}


def test_a_v3_launch_gets_the_cloud_api_flow_and_cannot_reach_coexistence(sandbox):
    """Meta retired v2/v3 on 2026-10-15: their extras get the new-number flow, featureType or
    not. The option is not offered, a forged answer is refused, and so is the API shortcut."""
    step_url, page = _to_number_step(sandbox, SEED_V3)
    assert COEXISTENCE_LABEL not in page.text
    assert "Cadastrar um número novo na API de Nuvem" in page.text
    assert "versão descontinuada" in page.text

    forged = _post_step(sandbox, step_url, {"scenario": "coexistence"})
    assert forged.status_code == 400 and "Escolha como conectar o número." in forged.text
    (signup,) = sandbox.state()["signups"]
    assert (signup["es_version"], signup["offers_coexistence"], signup["step"]) == (
        "v3", False, "number")

    shortcut = sandbox.api("POST", "signups", json={"scenario": "coexistence",
                                                    "extras": SEED_V3})
    assert shortcut.status_code == 400 and "Cloud API" in shortcut.json()["error"]
    assert sandbox.state()["wabas"] == []


@pytest.mark.parametrize("extras,offered", [
    ({"setup": {}, "featureType": "whatsapp_business_app_onboarding", "version": "v4"}, True),
    # Meta's coexistence guide shape (no `version`: the configuration picks v4).
    ({"setup": {}, "featureType": "whatsapp_business_app_onboarding",
      "sessionInfoVersion": "3"}, True),
    ({"setup": {}}, False),  # v4 without the feature type: the new-number picker only
    ({"version": "v2", "featureType": "whatsapp_business_app_onboarding"}, False),
])
def test_coexistence_needs_v4_and_its_feature_type(sandbox, extras, offered):
    step_url, page = _to_number_step(sandbox, extras)
    assert (COEXISTENCE_LABEL in page.text) is offered
    answer = _post_step(sandbox, step_url, {"scenario": "coexistence",
                                            "coex_number": "+55 11 94000-1234"})
    assert answer.status_code == (200 if offered else 400)
