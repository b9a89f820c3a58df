"""Issue 20: every onboarding ends where the tenant can act — `canStart` and restarts, `stalled`,
pt-BR failures with a code (never Meta's text), a FINISH relayed twice, disconnection reasons,
token-expiry notices and a hosted re-authorization that fetches a fresh token."""

from datetime import timedelta

import pytest
import responses
from django.core import mail
from django.utils import timezone

from organizations.models import Membership
from tests.factories import (
    ConnectionFactory,
    MembershipFactory,
    OnboardingFactory,
    PhoneNumberFactory,
)
from tests.ingest_support import deliver
from tests.meta import GRAPH, graph_signup, load, partner_added
from whatsapp.api.failures import FAILURES, failure_message
from whatsapp.models import AnalyticsEvent, Connection, Onboarding, PhoneNumber, TokenExpiryNotice
from whatsapp.onboarding.pipeline import pipeline_run
from whatsapp.onboarding.token_expiry import token_expiry_notices_send

pytestmark = pytest.mark.django_db
CALLBACK = "/api/v1/whatsapp/embedded-signup/callback"
STATUS = "/api/v1/whatsapp/check-connection"
WABA, PHONE = "102000000000101", "304000000000101"


def status_of(api) -> dict:
    body = api.get(STATUS).json()
    assert body == api.get("/api/v1/whatsapp/connection/status").json()
    return body


def finish(api, onboarding, code="code-123"):
    return api.post(CALLBACK, {"state": str(onboarding.tracking_code), "event": "FINISH",
                               "code": code, "wabaId": WABA, "phoneNumberId": PHONE},
                    format="json")


@pytest.mark.parametrize("make,status,can_start", [
    (lambda org: None, "not_connected", True),
    (lambda org: OnboardingFactory(organization=org), "connecting", True),
    (lambda org: OnboardingFactory(organization=org, status=Onboarding.Status.CANCELLED),
     "cancelled", True),
    (lambda org: OnboardingFactory(organization=org, status=Onboarding.Status.FAILED,
                                   error_code="2655093"), "error", True),
    (lambda org: ConnectionFactory(organization=org), "connected", False),
    (lambda org: ConnectionFactory(organization=org,
                                   status=Connection.Status.AWAITING_PHONE_SELECTION),
     "awaiting_phone_selection", False),
    (lambda org: ConnectionFactory(organization=org, token_status=Connection.TokenStatus.INVALID),
     "token_invalid", True),
    (lambda org: ConnectionFactory(organization=org, status=Connection.Status.DISCONNECTED,
                                   disconnect_reason="user_request"), "disconnected", True),
])
def test_can_start_in_every_state_but_connected_and_choosing(api, org, make, status, can_start):
    make(org)
    body = status_of(api)
    assert (body["status"], body["canStart"]) == (status, can_start)


def test_a_new_onboarding_supersedes_a_pending_one_whose_code_still_attributes(
        api, client, org, django_capture_on_commit_callbacks):
    first = api.get("/api/v1/whatsapp/onboarding-url").json()["trackingCode"]
    assert status_of(api)["canStart"] is True  # "Recomeçar" beside the spinner
    second = api.get("/api/v1/whatsapp/onboarding-url").json()["trackingCode"]
    assert first != second
    assert status_of(api)["onboarding"]["trackingCode"] == second

    # Meta completes the abandoned first signup late: it still belongs to this organization.
    with django_capture_on_commit_callbacks(execute=True):
        deliver(client, partner_added(tracking_code=first))
    connection = Connection.objects.get()
    assert (connection.organization, connection.attributed_by) == (org, "tracking_code")
    assert str(connection.tracking_code_used) == first


def test_a_pending_onboarding_without_signal_is_stalled(api, org, client, settings, admin_user):
    settings.WHATSAPP_ONBOARDING_IDLE_SECONDS = 600
    onboarding = OnboardingFactory(organization=org)
    assert status_of(api)["status"] == "connecting"

    Onboarding.objects.filter(pk=onboarding.pk).update(
        created_at=timezone.now() - timedelta(seconds=601))
    body = status_of(api)
    assert body["status"] == "stalled" and body["canStart"] is True
    assert body["message"] == (
        "Não tivemos retorno da Meta. Se você concluiu as etapas lá, o WhatsApp será conectado "
        "assim que a Meta confirmar; caso contrário, tente novamente.")
    client.force_login(admin_user)
    assert body["message"] in client.get("/").content.decode()  # the home checklist too


def test_a_finish_relayed_twice_is_answered_from_what_is_stored(api, org, admin_user, graph):
    graph_signup(graph, waba=WABA)
    onboarding = OnboardingFactory(organization=org, created_by=admin_user)
    first = finish(api, onboarding)
    assert first.status_code == 200, first.json()

    again = finish(api, onboarding)

    assert again.status_code == 409
    assert again.json() == {"error": "Esta sessão de conexão já foi encerrada.",
                            "code": "session_finished",
                            "connection_id": first.json()["connection_id"],
                            "status": first.json()["status"]}
    exchanges = [c for c in graph.calls if "oauth/access_token" in c.request.url]
    assert len(exchanges) == 1  # never a second code exchange at Meta
    assert not AnalyticsEvent.objects.filter(name=AnalyticsEvent.Name.SIGNUP_FAILED).exists()
    assert status_of(api)["status"] != "error"


@pytest.mark.parametrize("answer,http,code", [
    ({"status": 400, "json": {"error": {"message": "This authorization code has been used.",
                                        "type": "OAuthException", "code": 100}}},
     400, "code_refused"),
    ({"status": 503, "json": {"error": {"message": "Service temporarily unavailable",
                                        "type": "OAuthException", "code": 2}}},
     502, "meta_unavailable"),
])
def test_a_refused_callback_reaches_the_error_state_with_a_code(api, org, admin_user, graph,
                                                                 answer, http, code):
    graph.get(f"{GRAPH}/oauth/access_token", **answer)
    onboarding = OnboardingFactory(organization=org, created_by=admin_user)

    response = finish(api, onboarding)

    assert response.status_code == http
    assert response.json()["code"] == code
    assert "Meta" not in response.json()["error"].split("Erro:")[0]
    body = status_of(api)
    assert (body["status"], body["errorCode"]) == ("error", code)
    assert body["message"] == body["errorMessage"] == failure_message(code)
    assert body["message"].endswith(f"Código para o suporte: {code}.")
    assert "authorization code" not in str(body) and "temporarily" not in str(body)
    failed = AnalyticsEvent.objects.get(name=AnalyticsEvent.Name.SIGNUP_FAILED)
    assert failed.properties == {"error_code": code, "step_failed": "callback",
                                 "source": "server"}


def test_a_token_that_does_not_cover_the_waba_is_an_error_with_its_code(api, org, graph):
    graph_signup(graph, waba="999999999")  # Meta's token covers another WABA
    onboarding = OnboardingFactory(organization=org)
    assert finish(api, onboarding).status_code == 403
    assert status_of(api)["errorCode"] == "waba_not_granted"
    assert not Connection.objects.exists()


def test_the_persons_own_cancel_is_neutral(api, org):
    onboarding = OnboardingFactory(organization=org)
    api.post(CALLBACK, {"state": str(onboarding.tracking_code), "event": "CANCEL",
                        "currentStep": "PHONE_NUMBER_SETUP"}, format="json")
    body = status_of(api)
    assert (body["status"], body["errorCode"], body["errorMessage"]) == ("cancelled", "", "")
    assert not AnalyticsEvent.objects.filter(name=AnalyticsEvent.Name.SIGNUP_FAILED).exists()


def test_registration_blocked_133016_is_an_error_not_connecting(api, org):
    connection = ConnectionFactory(organization=org, status=Connection.Status.CONNECTING)
    PhoneNumberFactory(connection=connection, status=PhoneNumber.Status.CONFIGURING,
                       registration_status=PhoneNumber.RegistrationStatus.BLOCKED)
    body = status_of(api)
    assert (body["status"], body["errorCode"], body["canStart"]) == ("error", "133016", True)
    assert "72 horas" in body["message"] and "133016" in body["message"]


def test_every_mapped_failure_and_an_unknown_one_read_in_portuguese():
    for code in FAILURES:
        text = failure_message(code)
        assert text.startswith("Não foi possível conectar. Erro: ")
        assert text.endswith(f"Código para o suporte: {code}.")
    assert failure_message("9999999") == (
        "Não foi possível conectar. Erro: a Meta informou um erro. Tente novamente; se acontecer "
        "de novo, entre em contato com o suporte. Código para o suporte: 9999999.")


@pytest.mark.parametrize("fixture,code,why", [
    ("account_update_partner_removed.json", "PARTNER_REMOVED",
     "a sua empresa removeu o acesso da Qualifica Leads na Meta"),
    ("account_update_partner_app_uninstalled.json", "PARTNER_APP_UNINSTALLED",
     "o app da Qualifica Leads foi removido da sua conta do WhatsApp na Meta"),
    ("account_update_account_offboarded.json", "ACCOUNT_OFFBOARDED",
     "a Meta retirou o número da API de Nuvem (offboarding)"),
])
def test_a_disconnection_by_meta_says_why(api, client, org, fixture, code, why):
    from tests.meta import wire
    from whatsapp.core.payloads import AccountUpdate, parse_delivery

    body = load(fixture)
    update = AccountUpdate.from_change(parse_delivery(wire(body)).changes[0])
    ConnectionFactory(organization=org, waba_id=update.waba_id, with_token=True)
    deliver(client, body)

    status = status_of(api)
    assert (status["status"], status["disconnectCode"]) == ("disconnected", code)
    assert status["message"] == (f"WhatsApp desconectado: {why}. Reconecte para voltar a receber "
                                 f"mensagens. Código para o suporte: {code}.")


def test_the_admins_own_disconnection_is_not_blamed_on_meta(api, org):
    ConnectionFactory(organization=org, status=Connection.Status.DISCONNECTED,
                      disconnect_reason="troca de aparelho")
    status = status_of(api)
    assert status["disconnectCode"] == "user_request"
    assert status["message"].startswith("WhatsApp desconectado por um administrador")


def test_token_expiring_shows_the_date_and_mails_admins_once_per_threshold(api, org, settings):
    settings.SITE_URL = "https://app.qualifica.example"
    member = MembershipFactory(organization=org, role=Membership.Role.MEMBER)
    now = timezone.now()
    expires = now + timedelta(days=20)
    connection = ConnectionFactory(organization=org, with_token=True, token_expires_at=expires)
    PhoneNumberFactory(connection=connection)
    date = timezone.localtime(expires).strftime("%d/%m")

    body = status_of(api)
    assert body["reconnectBy"] == date
    assert body["notice"].startswith(f"Reconecte seu WhatsApp até {date}")

    assert [n.threshold_days for n in token_expiry_notices_send(now=now)] == [30]
    assert token_expiry_notices_send(now=now) == []  # once per threshold
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.subject == f"Reconecte seu WhatsApp até {date}"
    assert sent.to == [org.memberships.get(role="admin").user.email]
    assert member.user.email not in sent.to
    assert "https://app.qualifica.example/dashboard/settings/whatsapp" in sent.body
    assert "5511940001234" in sent.body and "EAA" not in sent.body

    later = expires - timedelta(days=6)
    assert [n.threshold_days for n in token_expiry_notices_send(now=later)] == [7]
    assert token_expiry_notices_send(now=later) == []
    assert len(mail.outbox) == 2
    assert TokenExpiryNotice.objects.count() == 2


def test_a_failed_send_leaves_no_marker_and_is_tried_again(api, org, monkeypatch):
    ConnectionFactory(organization=org, with_token=True,
                      token_expires_at=timezone.now() + timedelta(days=3))

    def broken(*args, **kwargs):
        raise OSError("SMTP down")

    monkeypatch.setattr("whatsapp.onboarding.token_expiry.send_mail", broken)
    with pytest.raises(OSError):
        token_expiry_notices_send()
    assert not TokenExpiryNotice.objects.exists()
    monkeypatch.undo()
    assert [n.threshold_days for n in token_expiry_notices_send()] == [7]
    assert len(mail.outbox) == 1


def test_a_token_that_never_expires_or_is_far_off_shows_no_banner(api, org):
    ConnectionFactory(organization=org, with_token=True,
                      token_expires_at=timezone.now() + timedelta(days=45))
    assert status_of(api)["notice"] == ""
    assert token_expiry_notices_send() == []


def test_hosted_reauthorization_fetches_a_fresh_token_instead_of_the_invalid_one(
        client, org, admin_user, settings, django_capture_on_commit_callbacks, broker):
    settings.META_SYSTEM_USER_TOKEN = "EAAsystem"
    connection = ConnectionFactory(organization=org, waba_id=WABA,
                                   owner_business_id="203000000000101", with_token=True,
                                   token="EAArevoked", subscribed_at=timezone.now())
    PhoneNumberFactory(connection=connection, phone_number_id=PHONE,
                       registration_status=PhoneNumber.RegistrationStatus.REGISTERED)
    Connection.objects.filter(pk=connection.pk).update(
        token_status=Connection.TokenStatus.INVALID)
    onboarding = OnboardingFactory(organization=org, created_by=admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        deliver(client, partner_added(waba_id=WABA, tracking_code=onboarding.tracking_code))
    with responses.RequestsMock() as graph:
        graph.post(f"{GRAPH}/203000000000101/system_user_access_tokens",
                   json={"access_token": "EAAfresh"})
        graph.get(f"{GRAPH}/{WABA}/phone_numbers", json={"data": [{
            "id": PHONE, "display_phone_number": "5511940001234", "is_on_biz_app": False}]})
        assert pipeline_run(connection.pk) == "done"
        used = [c.request.headers.get("Authorization") for c in graph.calls]

    connection.refresh_from_db()
    assert connection.get_access_token() == "EAAfresh"
    assert connection.token_status == Connection.TokenStatus.VALID
    assert "Bearer EAArevoked" not in used
    assert Connection.objects.get(pk=connection.pk).status == Connection.Status.CONNECTED


def test_reconnecting_an_invalid_token_reads_as_connecting_until_the_new_token(api, org):
    connection = ConnectionFactory(organization=org, with_token=True,
                                   token_checked_at=timezone.now() - timedelta(minutes=5))
    Connection.objects.filter(pk=connection.pk).update(
        token_status=Connection.TokenStatus.INVALID)
    assert status_of(api)["status"] == "token_invalid"

    api.get("/api/v1/whatsapp/onboarding-url")  # the admin clicks "Reconectar"
    assert status_of(api)["status"] == "connecting"
    Onboarding.objects.update(status=Onboarding.Status.COMPLETED, completed_at=timezone.now())
    assert status_of(api)["status"] == "connecting"  # the pipeline fetches the new token
    Onboarding.objects.update(completed_at=timezone.now() - timedelta(hours=1))
    assert status_of(api)["status"] == "token_invalid"  # it never came: ask again
