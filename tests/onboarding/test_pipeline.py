"""Embedded Signup callback and the onboarding pipeline, with Graph mocked at the HTTP layer."""

import json
import re
from datetime import timedelta

import pytest
import requests
import responses
from django.utils import timezone

from audit.models import AuditLog
from tests.factories import MembershipFactory, OnboardingFactory
from tests.ingest_support import deliver
from tests.meta import GRAPH, graph_signup, load
from whatsapp.models import AnalyticsEvent, Connection, Onboarding, PhoneNumber
from whatsapp.onboarding.pipeline import pipeline_run

pytestmark = pytest.mark.django_db
CALLBACK = "/api/v1/whatsapp/embedded-signup/callback"
WABA, PHONE, PHONE2 = "102000000000101", "304000000000101", "304000000000102"


def number(phone_id: str, *, coexistence: bool = False, display: str = "5511940001234") -> dict:
    return {"id": phone_id, "display_phone_number": display, "verified_name": "Imobiliária Sol",
            "quality_rating": "GREEN", "platform_type": "CLOUD_API",
            "code_verification_status": "VERIFIED", "is_on_biz_app": coexistence}


@pytest.fixture
def graph(graph):
    """The shared Graph fake, answering a finished signup for WABA."""
    graph_signup(graph, waba=WABA)
    return graph


def calls(rsps, method: str, pattern: str) -> list:
    return [c for c in rsps.calls
            if c.request.method == method and re.search(pattern, c.request.url.split("?")[0])]


def finish(api, onboarding, *, event="FINISH", waba=WABA, phone=PHONE, code="code-123"):
    body = {"state": str(onboarding.tracking_code), "event": event, "code": code, "wabaId": waba,
            "businessId": "203000000000101"}
    if phone:
        body["phoneNumberId"] = phone
    return api.post(CALLBACK, body, format="json")


def test_cloud_api_finish_binds_registers_and_connects(api, onboarding, org, graph):
    graph.get(f"{GRAPH}/{WABA}/phone_numbers", json={"data": [number(PHONE)]})
    graph.post(f"{GRAPH}/{PHONE}/register", json={"success": True})

    response = finish(api, onboarding)

    assert response.status_code == 200, response.json()
    connection = Connection.objects.get(pk=response.json()["connection_id"])
    assert connection.organization == org
    assert connection.get_access_token() == "EAAbusiness"
    assert "EAAbusiness" not in connection.access_token_encrypted
    assert connection.token_expires_at is None  # expires_at 0 = never
    assert pipeline_run(connection.pk) == "done"

    connection.refresh_from_db()
    assert connection.status == Connection.Status.CONNECTED
    assert connection.subscribed_at is not None
    config = PhoneNumber.objects.get()
    assert config.status == PhoneNumber.Status.CONFIGURED
    assert config.registration_status == PhoneNumber.RegistrationStatus.REGISTERED
    pin = json.loads(calls(graph, "POST", "/register$")[0].request.body)["pin"]
    assert re.fullmatch(r"\d{6}", pin) and config.get_pin() == pin
    assert pin not in config.registration_pin_encrypted
    onboarding.refresh_from_db()
    assert onboarding.status == Onboarding.Status.COMPLETED
    assert AuditLog.objects.filter(action=AuditLog.Action.WHATSAPP_CONNECTED).count() == 1
    completed = AnalyticsEvent.objects.get(name=AnalyticsEvent.Name.SIGNUP_COMPLETED)
    assert completed.properties["waba_id"] == WABA
    assert completed.properties["has_existing_number"] is False
    assert api.get("/api/v1/whatsapp/check-connection").json()["connected"] is True
    # Running again is harmless: nothing is registered twice.
    assert pipeline_run(connection.pk) == "done"
    assert len(calls(graph, "POST", "/register$")) == 1


def test_coexistence_syncs_contacts_then_history_once_and_never_registers(api, onboarding, graph):
    graph.get(f"{GRAPH}/{WABA}/phone_numbers", json={"data": [number(PHONE, coexistence=True)]})
    graph.post(f"{GRAPH}/{PHONE}/smb_app_data", json={"messaging_product": "whatsapp",
                                                   "request_id": "req-1"})

    response = finish(api, onboarding, event="FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING", phone="")
    connection_id = response.json()["connection_id"]
    assert pipeline_run(connection_id) == "done"
    assert pipeline_run(connection_id) == "done"

    config = PhoneNumber.objects.get()
    assert config.registration_status == PhoneNumber.RegistrationStatus.NOT_NEEDED
    assert config.contacts_sync_status == PhoneNumber.SyncStatus.REQUESTED
    assert config.history_sync_status == PhoneNumber.SyncStatus.REQUESTED
    assert config.contacts_sync_request_id == "req-1"
    sync_calls = calls(graph, "POST", "/smb_app_data$")
    assert [json.loads(c.request.body)["sync_type"] for c in sync_calls] == [
        "smb_app_state_sync", "history"]
    assert not calls(graph, "POST", "/register$")
    assert Connection.objects.get().is_coexistence is True
    completed = AnalyticsEvent.objects.get(name=AnalyticsEvent.Name.SIGNUP_COMPLETED)
    assert completed.properties["has_existing_number"] is True


def test_sync_interrupted_mid_call_is_not_retried_blindly(api, onboarding, graph):
    graph.get(f"{GRAPH}/{WABA}/phone_numbers", json={"data": [number(PHONE, coexistence=True)]})
    graph.post(f"{GRAPH}/{PHONE}/smb_app_data", body=requests.exceptions.ReadTimeout("timeout"))
    connection_id = finish(api, onboarding, event="FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
                           phone="").json()["connection_id"]
    pipeline_run(connection_id)
    pipeline_run(connection_id)
    config = PhoneNumber.objects.get()
    assert config.contacts_sync_status == PhoneNumber.SyncStatus.UNKNOWN
    assert config.history_sync_status == PhoneNumber.SyncStatus.UNKNOWN
    # Each kind asked once, the second run asks neither again (Meta may have accepted them).
    assert [json.loads(c.request.body)["sync_type"]
            for c in calls(graph, "POST", "/smb_app_data$")] == ["smb_app_state_sync", "history"]


def test_two_numbers_wait_for_the_admin_to_choose(api, onboarding, graph):
    graph.get(f"{GRAPH}/{WABA}/phone_numbers", json={"data": [
        number(PHONE), number(PHONE2, display="5511940005678")]})
    graph.post(f"{GRAPH}/{PHONE2}/register", json={"success": True})
    connection_id = finish(api, onboarding, phone="").json()["connection_id"]

    assert pipeline_run(connection_id) == "awaiting_phone_selection"
    status = api.get("/api/v1/whatsapp/check-connection").json()
    assert status["status"] == "awaiting_phone_selection"
    assert len(api.get("/api/v1/whatsapp/phone-numbers").json()["phoneNumbers"]) == 2

    response = api.post("/api/v1/whatsapp/select-phone", {"wabaId": WABA, "phoneId": PHONE2},
                        format="json")
    assert response.status_code == 200
    assert pipeline_run(connection_id) == "done"
    assert PhoneNumber.objects.get(phone_number_id=PHONE2).status == PhoneNumber.Status.CONFIGURED
    assert PhoneNumber.objects.get(phone_number_id=PHONE).status == PhoneNumber.Status.PENDING
    assert [c.request.url.split("?")[0] for c in calls(graph, "POST", "/register$")] == [
        f"{GRAPH}/{PHONE2}/register"]


def test_select_phone_of_another_org_is_404(api, graph):
    other = MembershipFactory()
    from tests.factories import ConnectionFactory, PhoneNumberFactory
    PhoneNumberFactory(connection=ConnectionFactory(organization=other.organization, waba_id="555"),
                  phone_number_id="666")
    response = api.post("/api/v1/whatsapp/select-phone", {"wabaId": "555", "phoneId": "666"},
                        format="json")
    assert response.status_code == 404


def test_registration_limit_133016_is_never_retried(api, onboarding, graph):
    graph.get(f"{GRAPH}/{WABA}/phone_numbers", json={"data": [number(PHONE)]})
    graph.post(f"{GRAPH}/{PHONE}/register", status=400, json={"error": {
        "message": "Too many attempts", "type": "OAuthException", "code": 133016}})
    connection_id = finish(api, onboarding).json()["connection_id"]

    # A person must act: the connection is `error` at once (not `connecting` forever), with
    # the code and a pt-BR reason the tenant reads; a second automatic run calls Meta no more.
    assert pipeline_run(connection_id) == "error"
    assert pipeline_run(connection_id) == "error"

    config = PhoneNumber.objects.get()
    assert config.registration_status == PhoneNumber.RegistrationStatus.BLOCKED
    assert "133016" in config.registration_error
    assert len(calls(graph, "POST", "/register$")) == 1
    status = api.get("/api/v1/whatsapp/connection/status").json()
    assert (status["status"], status["errorCode"]) == ("error", "133016")
    assert "72 horas" in status["errorMessage"] and "133016" in status["errorMessage"]


def test_transient_graph_error_is_retried_then_succeeds(api, onboarding, graph):
    graph.replace(responses.POST, f"{GRAPH}/{WABA}/subscribed_apps", status=503,
                  json={"error": {"message": "Service unavailable", "code": 2}})
    connection_id = finish(api, onboarding).json()["connection_id"]
    assert pipeline_run(connection_id) == "retry"
    assert "503" in Connection.objects.get().pipeline_error

    graph.replace(responses.POST, f"{GRAPH}/{WABA}/subscribed_apps", json={"success": True})
    graph.get(f"{GRAPH}/{WABA}/phone_numbers", json={"data": [number(PHONE)]})
    graph.post(f"{GRAPH}/{PHONE}/register", json={"success": True})
    assert pipeline_run(connection_id) == "done"
    assert Connection.objects.get().status == Connection.Status.CONNECTED


def test_expired_token_marks_it_invalid_and_asks_to_reconnect(api, onboarding, graph):
    graph.replace(responses.POST, f"{GRAPH}/{WABA}/subscribed_apps", status=401, json={"error": {
        "message": "Error validating access token", "type": "OAuthException", "code": 190}})
    connection_id = finish(api, onboarding).json()["connection_id"]

    assert pipeline_run(connection_id) == "token_invalid"
    assert pipeline_run(connection_id) == "token_invalid"

    assert Connection.objects.get().token_status == Connection.TokenStatus.INVALID
    assert AuditLog.objects.filter(action=AuditLog.Action.TOKEN_INVALIDATED).count() == 1
    body = api.get("/api/v1/whatsapp/check-connection").json()
    assert body["message"] == "Sessão expirada. Clique para reconectar."


@pytest.mark.parametrize("mutate,status", [
    (lambda b, o: b.update(state="00000000-0000-4000-8000-000000000000"), 404),
    (lambda b, o: b.update(state="not-a-uuid"), 400),
    (lambda b, o: b.pop("code"), 400),
    (lambda b, o: b.update(event="SOMETHING"), 400),
    (lambda b, o: b.update(wabaId="1; DROP TABLE"), 400),
])
def test_bad_callbacks_are_4xx_and_change_nothing(api, onboarding, graph, mutate, status):
    body = {"state": str(onboarding.tracking_code), "event": "FINISH", "code": "c",
            "wabaId": WABA}
    mutate(body, onboarding)
    response = api.post(CALLBACK, body, format="json")
    assert response.status_code == status, response.json()
    assert "error" in response.json()
    assert not Connection.objects.exists()
    onboarding.refresh_from_db()
    assert onboarding.status == Onboarding.Status.PENDING


def test_another_orgs_state_is_not_found(api, graph):
    foreign = OnboardingFactory()
    response = finish(api, foreign)
    assert response.status_code == 404
    assert not Connection.objects.exists()


def test_expired_session_is_410_and_reads_as_expired(api, org, graph):
    stale = OnboardingFactory(organization=org, expires_at=timezone.now() - timedelta(seconds=1))
    response = finish(api, stale)
    assert response.status_code == 410
    assert response.json()["error"] == "Sessão expirou, tente novamente."
    assert not calls(graph, "GET", "oauth/access_token")
    assert api.get("/api/v1/whatsapp/check-connection").json()["status"] == "expired"


def test_code_rejected_by_meta_is_a_clear_400(api, onboarding, graph):
    graph.replace(responses.GET, f"{GRAPH}/oauth/access_token", status=400, json={"error": {
        "message": "This authorization code has expired.", "type": "OAuthException", "code": 100}})
    response = finish(api, onboarding)
    assert response.status_code == 400
    # Our pt-BR text with what to do and the code, never Meta's words.
    assert response.json() == {"code": "code_refused", "error": (
        "Não foi possível conectar. Erro: a Meta não aceitou a autorização da janela. Tente "
        "novamente e conclua as etapas sem pausas. Código para o suporte: code_refused.")}
    assert "expired" not in response.json()["error"]
    assert not Connection.objects.exists()


def test_cancel_records_the_step_once(api, onboarding):
    body = {"state": str(onboarding.tracking_code), "event": "CANCEL",
            "currentStep": "PHONE_NUMBER_SETUP"}
    assert api.post(CALLBACK, body, format="json").status_code == 200
    assert api.post(CALLBACK, body, format="json").status_code == 409
    onboarding.refresh_from_db()
    assert onboarding.status == Onboarding.Status.CANCELLED
    assert onboarding.current_step == "PHONE_NUMBER_SETUP"
    event = AnalyticsEvent.objects.get(name=AnalyticsEvent.Name.SIGNUP_CANCELLED)
    assert event.properties == {"step_cancelled": "PHONE_NUMBER_SETUP"}
    status = api.get("/api/v1/whatsapp/check-connection").json()
    assert status["message"] == "Conexão cancelada. Clique para tentar novamente."


def test_meta_error_is_recorded_with_session_id(api, onboarding):
    body = {"state": str(onboarding.tracking_code), "event": "CANCEL", "errorCode": "2655093",
            "errorMessage": "Número já compartilhado com um parceiro.", "sessionId": "sess-9",
            "currentStep": "PHONE_NUMBER_VERIFICATION"}
    assert api.post(CALLBACK, body, format="json").status_code == 200
    onboarding.refresh_from_db()
    assert onboarding.status == Onboarding.Status.FAILED
    assert (onboarding.error_code, onboarding.session_id) == ("2655093", "sess-9")
    failed = AnalyticsEvent.objects.get(name=AnalyticsEvent.Name.SIGNUP_FAILED)
    assert failed.properties["step_failed"] == "PHONE_NUMBER_VERIFICATION"
    status = api.get("/api/v1/whatsapp/check-connection").json()
    assert status["status"] == "error"
    assert status["message"] == (
        "Não foi possível conectar. Erro: o número já está compartilhado com outro parceiro. No "
        "app WhatsApp Business, abra Configurações › Plataforma comercial, desconecte o "
        "parceiro atual e tente novamente. Código para o suporte: 2655093.")
    # Meta's own text is kept for support (the admin), never shown to the tenant.
    assert "Número já compartilhado" not in str(status)


def test_webhook_before_callback_gives_one_connection(client, api, onboarding, org, graph):
    deliver(client, load("account_update_partner_added.json"))
    assert Connection.objects.get().organization is None  # orphan until proven

    assert finish(api, onboarding).status_code == 200

    connection = Connection.objects.get()
    assert connection.organization == org
    assert connection.status == Connection.Status.CONNECTING
    assert AuditLog.objects.filter(action=AuditLog.Action.WHATSAPP_CONNECTED).count() == 1


def test_callback_before_webhook_gives_one_connection(client, api, onboarding, org, graph):
    assert finish(api, onboarding).status_code == 200
    deliver(client, load("account_update_partner_added.json"))

    connection = Connection.objects.get()
    assert connection.organization == org
    assert connection.owner_business_id == "203000000000101"
    assert AuditLog.objects.filter(action=AuditLog.Action.WHATSAPP_CONNECTED).count() == 1


def test_hosted_link_completion_fetches_the_token_with_the_system_user(client, org, admin_user,
                                                                      graph, settings):
    from tests.meta import partner_added
    from whatsapp.onboarding.signup import onboarding_start

    settings.META_SYSTEM_USER_TOKEN = "EAAsystem"
    graph.post(f"{GRAPH}/203000000000101/system_user_access_tokens",
               json={"access_token": "EAAcust"})
    graph.get(f"{GRAPH}/{WABA}/phone_numbers", json={"data": [number(PHONE)]})
    graph.post(f"{GRAPH}/{PHONE}/register", json={"success": True})
    onboarding = onboarding_start(organization=org, user=admin_user, redirect_path="/x")
    deliver(client, partner_added(tracking_code=onboarding.tracking_code))

    connection = Connection.objects.get()
    assert pipeline_run(connection.pk) == "done"
    connection.refresh_from_db()
    assert connection.get_access_token() == "EAAcust"
    assert connection.token_source == "system_user"
    fetch = calls(graph, "POST", "system_user_access_tokens")[0].request
    assert fetch.headers["Authorization"] == "Bearer EAAsystem"
    assert "appsecret_proof=" in fetch.body and "fetch_only=true" in fetch.body


def test_disconnect_then_reconnect(api, org, admin_user, graph):
    graph.get(f"{GRAPH}/{WABA}/phone_numbers", json={"data": [number(PHONE)]})
    graph.post(f"{GRAPH}/{PHONE}/register", json={"success": True})
    first = OnboardingFactory(organization=org, created_by=admin_user)
    pipeline_run(finish(api, first).json()["connection_id"])

    response = api.post("/api/v1/whatsapp/connection/disconnect", {"reason": "trocar número"},
                        format="json")

    assert response.status_code == 200
    old = Connection.objects.get()
    assert old.status == Connection.Status.DISCONNECTED
    assert old.access_token_encrypted == ""
    assert PhoneNumber.objects.get().registration_pin_encrypted == ""
    assert len(calls(graph, "DELETE", "subscribed_apps")) == 1
    assert AuditLog.objects.filter(action=AuditLog.Action.WHATSAPP_DISCONNECTED).count() == 1
    assert AnalyticsEvent.objects.get(name=AnalyticsEvent.Name.DISCONNECTED).properties == {
        "reason": "trocar número"}
    assert api.get("/api/v1/whatsapp/check-connection").json()["status"] == "disconnected"
    assert api.post("/api/v1/whatsapp/connection/disconnect", {}, format="json").status_code == 404

    second = OnboardingFactory(organization=org, created_by=admin_user)
    new_id = finish(api, second).json()["connection_id"]
    assert pipeline_run(new_id) == "done"
    assert Connection.objects.active().get().pk != old.pk
    assert api.get("/api/v1/whatsapp/check-connection").json()["connected"] is True


def test_connection_status_never_returns_the_token(api, onboarding, graph):
    finish(api, onboarding)
    raw = api.get("/api/v1/whatsapp/connection/status").content.decode()
    assert "EAAbusiness" not in raw and "v1:" not in raw
