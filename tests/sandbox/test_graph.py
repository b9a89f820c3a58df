"""The sandbox's Graph API, called over HTTP exactly as whatsapp/graph.py calls Meta."""

import hashlib
import hmac
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from sandbox.models import AuthCode

pytestmark = pytest.mark.django_db(transaction=True)


def proof(token: str) -> str:
    return hmac.new(settings.META_APP_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()


def assert_graph_error(response, status: int, code: int, subcode: int | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert {"message", "type", "code", "fbtrace_id"} <= set(error)
    assert error["code"] == code
    assert error.get("error_subcode") == subcode
    return error


def test_code_exchange_is_single_use_and_debug_token_lists_the_waba(sandbox):
    result = sandbox.signup("cloud_one")
    token = sandbox.exchange(result["code"])

    again = sandbox.graph("GET", "oauth/access_token", params={
        "client_id": settings.META_APP_ID, "client_secret": settings.META_APP_SECRET,
        "code": result["code"]})
    assert_graph_error(again, 400, 100, 36009)

    response = sandbox.graph("GET", "debug_token", params={
        "input_token": token, "access_token": f"{settings.META_APP_ID}|{settings.META_APP_SECRET}"})
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["app_id"] == settings.META_APP_ID
    assert data["type"] == "SYSTEM_USER"
    assert data["is_valid"] is True
    assert data["expires_at"] == 0  # never, by default
    scopes = {s["scope"]: s["target_ids"] for s in data["granular_scopes"]}
    assert scopes["whatsapp_business_management"] == [result["waba_id"]]
    assert scopes["whatsapp_business_messaging"] == [result["waba_id"]]
    assert {"application", "issued_at", "data_access_expires_at", "scopes", "user_id"} <= set(data)


def test_code_exchange_refuses_a_wrong_secret_and_an_expired_code(sandbox):
    result = sandbox.signup("cloud_one")
    wrong = sandbox.graph("GET", "oauth/access_token", params={
        "client_id": settings.META_APP_ID, "client_secret": "nope", "code": result["code"]})
    assert_graph_error(wrong, 400, 100)

    # Time travel past the code's 30 s life instead of sleeping through it.
    AuthCode.objects.update(created_at=timezone.now() - timedelta(seconds=31))
    expired = sandbox.graph("GET", "oauth/access_token", params={
        "client_id": settings.META_APP_ID, "client_secret": settings.META_APP_SECRET,
        "code": result["code"]})
    assert_graph_error(expired, 400, 100, 36007)


def test_debug_token_shows_a_configured_expiry_and_a_revoked_token(sandbox):
    sandbox.switches(token_expires_in=5_184_000)
    result, token = sandbox.connected()
    app_token = f"{settings.META_APP_ID}|{settings.META_APP_SECRET}"
    data = sandbox.graph("GET", "debug_token",
                         params={"input_token": token, "access_token": app_token}).json()["data"]
    assert data["expires_at"] > data["issued_at"] + 5_000_000

    assert sandbox.api("POST", "tokens/revoke", json={"waba_id": result["waba_id"]}).json() == {
        "revoked": 1}
    data = sandbox.graph("GET", "debug_token",
                         params={"input_token": token, "access_token": app_token}).json()["data"]
    assert data["is_valid"] is False
    assert_graph_error(sandbox.graph("GET", f"{result['waba_id']}/phone_numbers", token=token),
                       401, 190, 458)


def test_unknown_token_is_190_and_another_tenants_waba_is_100_33(sandbox):
    first, token = sandbox.connected()
    other = sandbox.signup("cloud_one")

    assert_graph_error(sandbox.graph("GET", f"{first['waba_id']}/phone_numbers", token="EAAbogus"),
                       401, 190)
    assert_graph_error(sandbox.graph("GET", f"{other['waba_id']}/phone_numbers", token=token),
                       400, 100, 33)


def test_system_user_access_tokens_checks_the_appsecret_proof(sandbox):
    result = sandbox.signup("cloud_one", flow="hosted")
    system_token = settings.META_SYSTEM_USER_TOKEN
    path = f"{result['business_id']}/system_user_access_tokens"

    good = sandbox.graph("POST", path, token=system_token,
                         data={"appsecret_proof": proof(system_token), "fetch_only": "true"})
    assert good.status_code == 200, good.text
    business_token = good.json()["access_token"]
    phones = sandbox.graph("GET", f"{result['waba_id']}/phone_numbers", token=business_token)
    assert phones.status_code == 200

    bad = sandbox.graph("POST", path, token=system_token,
                        data={"appsecret_proof": "0" * 64, "fetch_only": "true"})
    assert_graph_error(bad, 400, 100)
    missing = sandbox.graph("POST", path, token=system_token, data={"fetch_only": "true"})
    assert_graph_error(missing, 400, 100)
    not_partner = sandbox.graph("POST", path, token="EAAnotours",
                                data={"appsecret_proof": proof("EAAnotours"), "fetch_only": "true"})
    assert_graph_error(not_partner, 401, 190)


def test_a_wrong_appsecret_proof_on_a_query_is_refused(sandbox):
    result, token = sandbox.connected()
    path = f"{result['waba_id']}/phone_numbers"
    assert sandbox.graph("GET", path, token=token,
                         params={"appsecret_proof": proof(token)}).status_code == 200
    assert_graph_error(sandbox.graph("GET", path, token=token,
                                     params={"appsecret_proof": "f" * 64}), 400, 100)


def test_phone_numbers_default_fields_and_two_numbers(sandbox):
    result, token = sandbox.connected("cloud_two")
    body = sandbox.graph("GET", f"{result['waba_id']}/phone_numbers", token=token).json()
    assert len(body["data"]) == 2
    assert [p["id"] for p in body["data"]] == result["phone_number_ids"]
    number = body["data"][0]
    assert set(number) == {"verified_name", "code_verification_status", "display_phone_number",
                           "quality_rating", "platform_type", "throughput",
                           "last_onboarded_time", "webhook_configuration", "id"}
    assert number["platform_type"] == "CLOUD_API"
    assert number["quality_rating"] in {"GREEN", "YELLOW", "RED", "UNKNOWN"}
    assert number["throughput"] == {"level": "STANDARD"}
    assert number["display_phone_number"].startswith("+55 ")


def test_phone_numbers_with_fields_shows_coexistence(sandbox):
    result, token = sandbox.connected("coexistence")
    fields = ("id,display_phone_number,verified_name,quality_rating,platform_type,is_on_biz_app,"
              "code_verification_status,throughput,name_status,status")
    body = sandbox.graph("GET", f"{result['waba_id']}/phone_numbers", token=token,
                         params={"fields": fields}).json()
    (number,) = body["data"]
    assert set(number) == set(fields.split(","))
    assert number["is_on_biz_app"] is True
    assert number["platform_type"] == "CLOUD_API"
    node = sandbox.graph("GET", number["id"], token=token,
                         params={"fields": "is_on_biz_app,platform_type"}).json()
    assert node == {"is_on_biz_app": True, "platform_type": "CLOUD_API", "id": number["id"]}


def test_subscribed_apps_get_post_delete(sandbox):
    result, token = sandbox.connected()
    path = f"{result['waba_id']}/subscribed_apps"
    assert sandbox.graph("GET", path, token=token).json() == {"data": []}
    assert sandbox.graph("POST", path, token=token).json() == {"success": True}
    (app,) = sandbox.graph("GET", path, token=token).json()["data"]
    assert app["whatsapp_business_api_data"]["id"] == settings.META_APP_ID
    assert sandbox.graph("DELETE", path, token=token).json() == {"success": True}
    assert sandbox.graph("GET", path, token=token).json() == {"data": []}


def test_register_allows_ten_requests_per_72_hours_then_133016(sandbox):
    result, token = sandbox.connected("cloud_one")
    path = f"{result['phone_number_ids'][0]}/register"
    for _ in range(10):
        response = sandbox.graph("POST", path, token=token,
                                 json={"messaging_product": "whatsapp", "pin": "123456"})
        assert response.json() == {"success": True}
    eleventh = sandbox.graph("POST", path, token=token,
                             json={"messaging_product": "whatsapp", "pin": "123456"})
    assert_graph_error(eleventh, 400, 133016)
    assert "123456" not in str(sandbox.state())  # the PIN is never shown


def test_register_refuses_a_bad_pin_and_a_coexistence_number(sandbox):
    cloud, token = sandbox.connected("cloud_one")
    bad = sandbox.graph("POST", f"{cloud['phone_number_ids'][0]}/register", token=token,
                        json={"messaging_product": "whatsapp", "pin": "12ab"})
    assert_graph_error(bad, 400, 100)

    coex, coex_token = sandbox.connected("coexistence")
    refused = sandbox.graph("POST", f"{coex['phone_number_ids'][0]}/register", token=coex_token,
                            json={"messaging_product": "whatsapp", "pin": "123456"})
    error = assert_graph_error(refused, 400, 100)
    assert "coexistence" in error["message"]


def test_fault_injection_status_and_times(sandbox):
    result, token = sandbox.connected()
    created = sandbox.api("POST", "faults", json={
        "path": r"/phone_numbers$", "method": "GET", "status": 500, "code": 2, "times": 2})
    assert created.status_code == 201
    path = f"{result['waba_id']}/phone_numbers"

    for _ in range(2):
        assert_graph_error(sandbox.graph("GET", path, token=token), 500, 2)
    assert sandbox.graph("GET", path, token=token).status_code == 200
    (fault,) = sandbox.api("GET", "faults").json()["faults"]
    assert fault["remaining"] == 0 and fault["hits"] == 2


def test_fault_injection_delay_and_other_methods_untouched(sandbox):
    result, token = sandbox.connected()
    sandbox.api("POST", "faults", json={"path": "subscribed_apps", "method": "POST",
                                        "delay_ms": 400, "times": 1})
    sandbox.api("POST", "faults", json={"path": "subscribed_apps", "method": "POST",
                                        "status": 400, "code": 131000, "message": "boom"})
    path = f"{result['waba_id']}/subscribed_apps"
    assert sandbox.graph("GET", path, token=token).status_code == 200
    response = sandbox.graph("POST", path, token=token)
    assert response.elapsed.total_seconds() >= 0.4
    assert assert_graph_error(response, 400, 131000)["message"] == "boom"
    assert sandbox.api("POST", "faults", json={"path": "("}).status_code == 400


def test_message_templates_and_unknown_paths(sandbox):
    result, token = sandbox.connected()
    templates = sandbox.graph("GET", f"{result['waba_id']}/message_templates", token=token).json()
    assert {t["name"] for t in templates["data"]} >= {"confirmacao_visita"}
    assert_graph_error(sandbox.graph("GET", "12345/nothing_here", token=token), 400, 2500)


def test_waba_node_answers_its_owner_business_only_when_asked_and_covered(sandbox):
    mine, token = sandbox.connected(business_name="Dona Ltda")
    other, _ = sandbox.connected()

    plain = sandbox.graph("GET", mine["waba_id"], token=token)
    assert plain.status_code == 200, plain.text
    assert set(plain.json()) == {"id", "name", "timezone_id", "message_template_namespace"}

    asked = sandbox.graph("GET", mine["waba_id"], token=token,
                          params={"fields": "owner_business_info"})
    assert asked.json() == {"owner_business_info": {"name": "Dona Ltda",
                                                    "id": mine["business_id"]},
                            "id": mine["waba_id"]}
    # Another business's WABA: the token does not cover it.
    assert_graph_error(sandbox.graph("GET", other["waba_id"], token=token,
                                     params={"fields": "owner_business_info"}), 400, 100, 33)


def test_messaging_limit_field_follows_the_graph_version(sandbox):
    result, token = sandbox.connected()
    phone = result["phone_number_ids"][0]
    new, old = "whatsapp_business_manager_messaging_limit", "messaging_limit_tier"

    def node(version: str, field: str):
        return sandbox.http.get(f"{sandbox.base}/sandbox/graph/{version}/{phone}",
                                params={"fields": field},
                                headers={"Authorization": f"Bearer {token}"}, timeout=20)

    assert node("v25.0", new).json() == {new: "TIER_250", "id": phone}
    assert_graph_error(node("v25.0", old), 400, 100)
    assert node("v23.0", old).json() == {old: "TIER_250", "id": phone}
    assert_graph_error(node("v23.0", new), 400, 100)
    listing = sandbox.graph("GET", f"{result['waba_id']}/phone_numbers", token=token,
                            params={"fields": f"id,{new}"}).json()
    assert listing["data"] == [{new: "TIER_250", "id": phone}]
