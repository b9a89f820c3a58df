"""An imobiliária admin connects WhatsApp in a real browser, through the Meta sandbox, with a
real Celery worker running the pipeline. Screenshots of every state: artifacts/screenshots/."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from audit.models import AuditLog
from tests.e2e.conftest import assert_accessible, shot
from tests.support import wait_for
from whatsapp.models import (
    Connection,
    FeatureFlag,
    FeatureFlagOverride,
    Onboarding,
    PhoneNumber,
    WebhookLog,
    flags,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

COEXISTENCE = "Conectar o app WhatsApp Business existente"
CLOUD_ONE = "Cadastrar um número novo na API de Nuvem"
CLOUD_TWO = "Cadastrar dois números na API de Nuvem (escolher depois)"


def wait_status(page, status: str, timeout: float = 90) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "s => document.getElementById('wa-status').dataset.status === s", arg=status,
            timeout=timeout * 1000)
    except PlaywrightTimeout:
        box = page.locator("#wa-status")
        connections = list(Connection.objects.values("status", "pipeline_step", "pipeline_error",
                                                     "organization_id"))
        pytest.fail(f"status stayed {box.get_attribute('data-status')!r} "
                    f"({box.inner_text()!r}), waiting for {status!r}; {connections}")


def open_signup(page, button: str = "Conectar WhatsApp"):
    with page.expect_popup() as info:
        page.get_by_role("button", name=button).click()
    popup = info.value
    popup.set_default_timeout(20_000)
    popup.wait_for_load_state()
    return popup


def open_hosted_signup(page, sandbox):
    """The organization is on the v2 onboarding (the hosted link first), and Meta echoes the
    tracking code in PARTNER_ADDED (a sandbox switch, as the seeds expect): open the link."""
    flag = FeatureFlag.objects.create(name=flags.V2_ONBOARDING, rollout_percentage=0)
    FeatureFlagOverride.objects.create(flag=flag, organization=page.organization, enabled=True)
    sandbox.switches(echo_tracking_code=True)
    page.reload()
    return open_signup(page)


def walk(popup, scenario: str, *, share_history: bool = True, existing_waba: str = "",
         existing_business: str = "") -> None:
    if existing_business:
        popup.check(f"#business-{existing_business}")
    popup.click("#next")  # business
    if existing_waba:
        popup.check(f"#waba-{existing_waba}")
    popup.click("#next")  # WABA
    popup.get_by_label(scenario).check()
    popup.click("#next")  # number
    if scenario == COEXISTENCE:
        label = ("Sim, compartilhar o histórico de conversas" if share_history
                 else "Não compartilhar")
        popup.get_by_label(label).check()
        popup.click("#next")  # history
    popup.get_by_role("heading", name="Revise e conclua").wait_for()
    popup.click("#next")  # Concluir


def test_coexistence_success(admin_page, sandbox, worker):
    page = admin_page
    assert page.locator("#wa-status").inner_text() == "WhatsApp não conectado."
    shot(page, "01-not-connected")

    popup = open_signup(page)
    wait_status(page, "connecting")
    shot(page, "02-connecting")
    walk(popup, COEXISTENCE)

    wait_status(page, "connected")
    assert page.get_by_role("heading", name="WhatsApp conectado").is_visible()
    number = PhoneNumber.objects.get()
    assert page.locator("#wa-connected-numbers").inner_text().startswith("+55")
    shot(page, "03-connected-coexistence")

    connection = Connection.objects.get()
    assert connection.organization == page.organization
    assert connection.is_coexistence is True
    assert number.registration_status == PhoneNumber.RegistrationStatus.NOT_NEEDED
    wait_for(lambda: PhoneNumber.objects.filter(
        history_sync_status=PhoneNumber.SyncStatus.REQUESTED).exists(), timeout=30,
        message="the history sync request")
    assert sandbox.state()["subscriptions"], "the app must be subscribed to the WABA"


def test_cloud_api_two_numbers_and_a_choice(admin_page, sandbox, worker):
    """Through the v2 hosted link (no browser-side number): the admin chooses in our page."""
    page = admin_page
    hosted = open_hosted_signup(page, sandbox)
    assert "/sandbox/onboard/" in hosted.url
    walk(hosted, CLOUD_TWO)

    wait_status(page, "awaiting_phone_selection")
    choices = page.locator("input[name=phone]")
    assert choices.count() == 2
    shot(page, "04-awaiting-phone-selection")
    second = choices.nth(1)
    chosen_id = second.get_attribute("value")
    second.check()
    page.get_by_role("button", name="Usar este número").click()

    wait_status(page, "connected")
    shot(page, "05-connected-cloud-api")
    chosen = PhoneNumber.objects.get(phone_number_id=chosen_id)
    assert chosen.status == PhoneNumber.Status.CONFIGURED
    assert chosen.registration_status == PhoneNumber.RegistrationStatus.REGISTERED
    assert PhoneNumber.objects.exclude(pk=chosen.pk).get().status == PhoneNumber.Status.PENDING


def test_number_chosen_in_metas_popup_is_used(admin_page, sandbox, worker):
    """FINISH carries the phone_number_id the admin picked in Meta's flow: no second question."""
    page = admin_page
    walk(open_signup(page), CLOUD_TWO)
    wait_status(page, "connected")
    reported = Connection.objects.get().requested_phone_number_id
    assert PhoneNumber.objects.get(status=PhoneNumber.Status.CONFIGURED).phone_number_id == reported


def test_cancel_at_a_step(admin_page, sandbox):
    page = admin_page
    popup = open_signup(page)
    popup.click("#next")
    popup.click("#next")
    popup.get_by_role("heading", name="Adicione um número de telefone").wait_for()
    popup.click("#cancel")

    wait_status(page, "cancelled")
    assert page.locator("#wa-status").inner_text() == (
        "Conexão cancelada. Clique para tentar novamente.")
    assert page.get_by_role("button", name="Tentar novamente").is_visible()
    shot(page, "06-cancelled")
    onboarding = Onboarding.objects.get()
    assert (onboarding.status, onboarding.current_step) == ("cancelled", "PHONE_NUMBER_SETUP")


def test_meta_error(admin_page, sandbox):
    page = admin_page
    popup = open_signup(page)
    popup.get_by_text("Simular um erro da Meta").click()
    popup.select_option("#error_code", "2655093")
    popup.click("#simulate-error")

    wait_status(page, "error")
    # What happened, what to do, the code for support; never Meta's own text (issue 20 §3).
    assert page.locator("#wa-status").inner_text() == (
        "Não foi possível conectar. Erro: o número já está compartilhado com outro parceiro. No "
        "app WhatsApp Business, abra Configurações › Plataforma comercial, desconecte o "
        "parceiro atual e tente novamente. Código para o suporte: 2655093.")
    assert page.get_by_role("button", name="Tentar novamente").is_visible()
    assert_accessible(page, "error")
    shot(page, "07-meta-error")
    onboarding = Onboarding.objects.get()
    assert onboarding.error_code == "2655093" and onboarding.session_id


def test_expired_session(admin_page, sandbox):
    page = admin_page
    popup = open_signup(page)
    # The admin walked away for more than the tracking code's life before finishing.
    Onboarding.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    walk(popup, CLOUD_ONE)

    wait_status(page, "expired")
    assert page.locator("#wa-status").inner_text() == "Sessão expirou, tente novamente."
    # The relay's 410 fills the error box; a poll may have rendered the status first.
    expect(page.locator("#wa-error")).to_have_text("Sessão expirou, tente novamente.",
                                                   timeout=15_000)
    shot(page, "08-expired")
    assert not Connection.objects.filter(organization=page.organization).exists()


def test_popup_blocked_falls_back_to_the_hosted_link(admin_page, sandbox, worker):
    page = admin_page
    # As the seeds expect, Meta echoes the tracking code in PARTNER_ADDED (a sandbox switch).
    sandbox.switches(echo_tracking_code=True)
    page.add_init_script("window.open = () => null")
    page.reload()
    page.get_by_role("button", name="Conectar WhatsApp").click()

    link = page.get_by_role("link", name="Abra a página de conexão da Meta")
    link.wait_for()
    shot(page, "09-popup-blocked-fallback")
    assert "extras=" in link.get_attribute("href")
    with page.expect_popup() as info:  # a link with target=_blank is not a blocked popup
        link.click()
    hosted = info.value
    hosted.set_default_timeout(20_000)
    walk(hosted, CLOUD_ONE)

    wait_status(page, "connected")
    connection = Connection.objects.get()
    assert connection.attributed_by == "tracking_code"
    assert connection.token_source == "system_user"


def test_callback_before_webhook_gives_one_connection(admin_page, sandbox, worker):
    page = admin_page
    dead_url = sandbox.base + "/nowhere"
    # Meta's webhooks are late: they fail and are retried (for ~1 min) until we answer 200.
    sandbox.switches(webhook_url=dead_url, retry_delays=[2, 3, 5, 8, 13, 21])
    popup = open_signup(page)
    walk(popup, CLOUD_ONE)
    wait_for(lambda: Connection.objects.filter(organization=page.organization).exists(),
             timeout=30, message="the callback to bind the WABA")
    sandbox.switches(webhook_url=sandbox.webhook_url)  # the retries now reach us

    wait_status(page, "connected")
    wait_for(lambda: WebhookLog.objects.filter(status="processed").count() >= 2, timeout=60,
             message=f"PARTNER_ADDED and PARTNER_APP_INSTALLED to be processed: "
                     f"{[(d['status'], d.get('url')) for d in sandbox.state()['deliveries']]}")
    assert Connection.objects.count() == 1
    assert AuditLog.objects.filter(action=AuditLog.Action.WHATSAPP_CONNECTED).count() == 1


def test_webhook_before_callback_gives_one_connection(admin_page, sandbox, worker):
    page = admin_page

    def hold_callback(route) -> None:
        # Let Meta's PARTNER_ADDED arrive and be processed (an orphan) before the browser's proof.
        wait_for(lambda: Connection.objects.filter(organization__isnull=True).exists(),
                 timeout=30, message="PARTNER_ADDED to create an orphan first")
        route.continue_()

    page.route("**/api/v1/whatsapp/embedded-signup/callback", hold_callback)
    popup = open_signup(page)
    walk(popup, CLOUD_ONE)

    wait_status(page, "connected")
    assert Connection.objects.count() == 1
    assert Connection.objects.get().organization == page.organization
    # The early PARTNER_ADDED awaited the browser: never announced as an orphan (issue 18 §2).
    assert AuditLog.objects.filter(action=AuditLog.Action.WABA_ORPHANED).count() == 0
    assert AuditLog.objects.filter(action=AuditLog.Action.WABA_AWAITING_BROWSER).count() == 1
    assert AuditLog.objects.filter(action=AuditLog.Action.WHATSAPP_CONNECTED).count() == 1


def test_disconnect_and_reconnect(admin_page, sandbox, worker):
    page = admin_page
    walk(open_signup(page), COEXISTENCE)
    wait_status(page, "connected")
    first = Connection.objects.get()
    waba_id, business_id = first.waba_id, first.owner_business_id

    page.get_by_role("button", name="Desconectar").click()
    dialog = page.get_by_role("dialog", name="Desconectar o WhatsApp?")
    dialog.wait_for()
    shot(page, "10-disconnect-confirmation")
    dialog.get_by_label("Motivo (opcional)").fill("troca de aparelho")
    dialog.get_by_role("button", name="Desconectar").click()

    wait_status(page, "disconnected")
    assert page.locator("#wa-status").inner_text() == (
        "WhatsApp desconectado por um administrador da sua organização. Reconecte para voltar "
        "a receber mensagens.")
    shot(page, "11-disconnected")
    old = Connection.objects.get()
    assert old.status == Connection.Status.DISCONNECTED and old.access_token_encrypted == ""

    first_number = PhoneNumber.objects.get().phone_number_id
    walk(open_signup(page, "Reconectar"), COEXISTENCE, existing_business=business_id,
         existing_waba=waba_id)
    # The same WABA now holds the old number and the one just connected: the admin picks.
    wait_status(page, "awaiting_phone_selection")
    page.check(f"input[name=phone][value='{first_number}']")
    page.get_by_role("button", name="Usar este número").click()
    wait_status(page, "connected")
    live = Connection.objects.active().get()
    assert live.waba_id == waba_id and live.pk != old.pk
    assert PhoneNumber.objects.get(phone_number_id=first_number).connection == live
    shot(page, "12-reconnected")
