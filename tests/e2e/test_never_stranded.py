"""Issue 20 in a real browser (chromium, live server, Meta sandbox, a real Celery worker where
the pipeline or webhooks run): every onboarding ends where the tenant can act, and every state
passes axe-core with no serious or critical violation. Screenshots: artifacts/screenshots/."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from tests.e2e.conftest import assert_accessible, settings_page, shot
from tests.e2e.test_connect_whatsapp import (
    CLOUD_ONE,
    COEXISTENCE,
    open_hosted_signup,
    open_signup,
    wait_status,
    walk,
)
from tests.factories import ConnectionFactory, PhoneNumberFactory
from tests.support import wait_for
from whatsapp.models import Connection, Onboarding, TokenExpiryNotice
from whatsapp.onboarding.token_health import connection_check_token

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def leave_silently(popup) -> None:
    """The Meta window goes away without telling the page (closed, crashed, lost): real Meta
    may post nothing then, so the sandbox's abandon message is cut off first."""
    popup.evaluate("() => { window.opener = null; }")
    popup.close()


def focused_text(page) -> str:
    return page.evaluate("() => document.activeElement && document.activeElement.innerText")


def test_abandon_mid_signup_then_start_over(admin_page, sandbox, worker):
    page = admin_page
    assert_accessible(page, "not_connected")
    page.clock.install()  # to let the page's 5-minute polling run out without waiting for it
    page.reload()
    popup = open_signup(page)
    wait_status(page, "connecting")
    popup.click("#next")  # one step in, then the window is gone
    leave_silently(popup)

    restart = page.get_by_role("button", name="Recomeçar")
    assert restart.is_visible()  # beside the spinner from the start
    assert page.get_by_text("Esta página se atualiza sozinha.").is_visible()
    assert_accessible(page, "connecting")
    shot(page, "20-01-abandoned-connecting-with-restart")

    page.clock.fast_forward("05:05")  # polling gives up
    page.get_by_text("Paramos de verificar automaticamente").wait_for()
    assert not page.get_by_text("Esta página se atualiza sozinha.").is_visible()
    assert not page.get_by_role("button", name="Recomeçar").is_visible()
    assert_accessible(page, "connecting, polling stopped")
    shot(page, "20-02-polling-gave-up")

    with page.expect_popup() as info:
        page.get_by_role("button", name="Tentar novamente").click()
    popup = info.value
    popup.set_default_timeout(20_000)
    walk(popup, CLOUD_ONE)
    wait_status(page, "connected")
    # Focus moved to the new state's heading.
    assert focused_text(page).endswith("WhatsApp conectado")
    assert_accessible(page, "connected")
    shot(page, "20-03-restarted-and-connected")

    first, second = Onboarding.objects.order_by("created_at")
    assert first.status == Onboarding.Status.PENDING  # superseded, never cancelled
    assert second.status == Onboarding.Status.COMPLETED
    connection = Connection.objects.get()
    assert (connection.organization, connection.onboarding) == (page.organization, second)


def test_a_finish_relayed_twice_never_shows_a_meta_error(admin_page, sandbox, worker):
    """A retried request: the relay reaches the server twice; the page gets the second answer
    (409 from what is stored), shows no error, and ends connected."""
    page = admin_page
    answers = []

    def relay_twice(route) -> None:
        route.fetch()  # the first request: exchanges the code and binds the WABA
        again = route.fetch()  # the same request again
        answers.append(again.status)
        route.fulfill(response=again)

    page.route("**/api/v1/whatsapp/embedded-signup/callback", relay_twice)
    walk(open_signup(page), CLOUD_ONE)
    wait_status(page, "connected")
    # 409, not Meta's 400 "code already used": the code was not exchanged a second time.
    assert answers == [409]
    assert not page.locator("#wa-error").is_visible()
    assert [c["used"] for c in sandbox.state()["codes"]] == [True]
    assert Connection.objects.get().organization == page.organization


def test_invalid_token_reconnects_through_the_hosted_link(admin_page, sandbox, worker):
    """Hosted re-authorization brings no code: a fresh token is fetched, never the invalid one."""
    page = admin_page
    hosted = open_hosted_signup(page, sandbox)
    walk(hosted, CLOUD_ONE)
    wait_status(page, "connected")
    hosted.close()  # Meta's "Tudo certo!" page, closed by the person
    connection = Connection.objects.get()
    old_token = connection.get_access_token()

    sandbox.api("POST", "tokens/revoke", json={"waba_id": connection.waba_id})
    assert connection_check_token(connection).result == "invalid"
    page.reload()
    wait_status(page, "token_invalid")
    assert_accessible(page, "token_invalid")
    shot(page, "20-12-token-invalid")

    walk(open_signup(page, "Reconectar"), CLOUD_ONE, existing_business=connection.owner_business_id,
         existing_waba=connection.waba_id)
    wait_status(page, "connected")
    connection.refresh_from_db()
    assert connection.token_status == Connection.TokenStatus.VALID
    assert connection.get_access_token() != old_token
    assert Connection.objects.count() == 1
    shot(page, "20-13-reconnected-through-hosted-link")


def test_browser_closed_mid_signup_then_stalled(admin_page, browser, live_server, sandbox,
                                                settings):
    page = admin_page
    popup = open_signup(page)
    popup.click("#next")
    popup.evaluate("() => { window.opener = null; }")
    page.context.close()  # the browser is closed mid-signup

    page = settings_page(browser, live_server, "admin@sol.com.br")  # the browser reopened
    wait_status(page, "connecting")

    # Nothing heard from Meta or the browser for WHATSAPP_ONBOARDING_IDLE_SECONDS.
    Onboarding.objects.update(created_at=timezone.now() - timedelta(
        seconds=settings.WHATSAPP_ONBOARDING_IDLE_SECONDS + 1))
    wait_status(page, "stalled", timeout=10)  # the page is still polling
    assert page.locator("#wa-status").inner_text().startswith("Não tivemos retorno da Meta.")
    assert page.get_by_role("button", name="Tentar novamente").is_visible()
    assert_accessible(page, "stalled")
    shot(page, "20-04-stalled")

    page.goto(f"{live_server.url}/")
    assert page.get_by_text("Não tivemos retorno da Meta.").is_visible()  # home checklist
    assert_accessible(page, "home, stalled")
    shot(page, "20-05-home-stalled")
    page.context.close()


def test_the_persons_own_cancel_is_neutral(admin_page, sandbox):
    page = admin_page
    popup = open_signup(page)
    popup.click("#next")
    popup.click("#cancel")

    wait_status(page, "cancelled")
    status = page.locator("#wa-status")
    assert status.inner_text() == "Conexão cancelada. Clique para tentar novamente."
    # Not red: the person chose to stop.
    assert status.evaluate("e => getComputedStyle(e).color") == "rgb(29, 41, 57)"
    assert not page.locator("#wa-error").is_visible()
    assert page.get_by_role("button", name="Tentar novamente").is_visible()
    assert_accessible(page, "cancelled")
    shot(page, "20-06-cancelled-neutral")


def test_token_expiring_shows_a_banner_and_mails_the_admins(admin_page, live_server):
    page = admin_page
    expires = timezone.now() + timedelta(days=20)
    connection = ConnectionFactory(organization=page.organization, with_token=True,
                                   token_expires_at=expires)
    PhoneNumberFactory(connection=connection)
    date = timezone.localtime(expires).strftime("%d/%m")

    page.reload()
    wait_status(page, "connected")
    banner = page.locator("#wa-notice")
    assert banner.inner_text().startswith(f"Reconecte seu WhatsApp até {date}")
    assert_accessible(page, "connected, token expiring")
    shot(page, "20-08-token-expiring-banner")
    page.goto(f"{live_server.url}/")
    assert page.get_by_text(f"Reconecte seu WhatsApp até {date}").is_visible()
    assert_accessible(page, "home, token expiring")
    shot(page, "20-09-home-token-expiring")

    from whatsapp.tasks import notify_token_expiry  # the beat task's body

    assert notify_token_expiry() == 1
    assert notify_token_expiry() == 0  # once per threshold
    assert [m.subject for m in mail.outbox] == [f"Reconecte seu WhatsApp até {date}"]
    assert mail.outbox[0].to == ["admin@sol.com.br"]
    assert TokenExpiryNotice.objects.get().threshold_days == 30


def test_meta_removes_the_partner_and_the_page_says_why(admin_page, sandbox, worker):
    page = admin_page
    walk(open_signup(page), COEXISTENCE)
    wait_status(page, "connected")
    waba_id = Connection.objects.get().waba_id

    response = sandbox.api("POST", "events", json={"kind": "partner_removed", "waba_id": waba_id})
    assert response.status_code == 202, response.text
    wait_for(lambda: Connection.objects.filter(status=Connection.Status.DISCONNECTED).exists(),
             timeout=30, message="PARTNER_REMOVED to disconnect the WABA")
    page.reload()
    wait_status(page, "disconnected")
    assert page.locator("#wa-status").inner_text() == (
        "WhatsApp desconectado: a sua empresa removeu o acesso da Qualifica Leads na Meta. "
        "Reconecte para voltar a receber mensagens. Código para o suporte: PARTNER_REMOVED.")
    assert page.get_by_role("button", name="Reconectar").is_visible()
    assert "status-alert" in page.locator("#wa-status").get_attribute("class")  # not chosen
    assert_accessible(page, "disconnected by Meta")
    shot(page, "20-10-partner-removed-reason")


def test_the_accessibility_check_can_fail(admin_page):
    """The old brand green (#1f8f4e) on white is below 4.5:1: axe-core must say so."""
    page = admin_page
    page.evaluate("""() => { const p = document.createElement("p");
        p.textContent = "Qualifica Leads"; p.style.color = "#1f8f4e"; p.style.background = "#fff";
        document.querySelector("main").appendChild(p); }""")
    from tests.e2e.conftest import axe_violations

    assert "color-contrast" in [v["id"] for v in axe_violations(page)]


def test_focus_follows_disconnect_and_the_favicon_is_served(admin_page, live_server, sandbox):
    page = admin_page
    connection = ConnectionFactory(organization=page.organization, with_token=True)
    PhoneNumberFactory(connection=connection)
    page.reload()
    wait_status(page, "connected")
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert page.request.get(f"{live_server.url}{icon}").ok

    page.get_by_role("button", name="Desconectar").click()
    dialog = page.get_by_role("dialog", name="Desconectar o WhatsApp?")
    assert_accessible(page, "disconnect dialog")
    dialog.get_by_role("button", name="Desconectar").click()
    wait_status(page, "disconnected")
    assert focused_text(page) == "Antes de começar"
    # The admin's own choice: said plainly, not as an alarm.
    assert "status-alert" not in page.locator("#wa-status").get_attribute("class")
    assert page.locator("#wa-status").inner_text().startswith(
        "WhatsApp desconectado por um administrador")
    assert_accessible(page, "disconnected by the admin")
    shot(page, "20-11-disconnected-focus")
