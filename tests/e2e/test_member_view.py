"""Issue 14 §3 in a real browser: a member of a connected imobiliária reads the connection on
Configurações › Conexão WhatsApp without the controls that change it, and the API refuses the
member's disconnect even when the browser sends it by hand."""

import pytest

from organizations.models import Membership
from whatsapp.models import Connection

from ..factories import MembershipFactory, PhoneNumberFactory
from .conftest import PASSWORD, shot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

ADMINS_ONLY = ("Somente os administradores da organização podem conectar o WhatsApp ou alterar "
               "a conexão.")


@pytest.fixture
def member_page(browser, live_server, transactional_db):
    """A logged-in member (not admin) of a connected imobiliária, on the settings page."""
    admin = MembershipFactory(organization__name="Imobiliária Sol")
    PhoneNumberFactory(connection__organization=admin.organization,
                       display_phone_number="5511940001234", verified_name="Imobiliária Sol")
    MembershipFactory(user__email="corretor@sol.com.br", organization=admin.organization,
                      role=Membership.Role.MEMBER)
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="pt-BR")
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("E-mail").fill("corretor@sol.com.br")
    page.get_by_label("Senha").fill(PASSWORD)
    page.get_by_role("button", name="Entrar").click()
    page.goto(f"{live_server.url}/dashboard/settings/whatsapp")
    yield page
    context.close()


def test_member_sees_the_status_without_the_controls(member_page):
    page = member_page
    # The script ran (it fills the connected numbers from the API) and did not break on the
    # controls a member's page does not have.
    page.locator("#wa-connected-numbers li").first.wait_for()
    assert page.locator("#wa-status").inner_text() == "WhatsApp conectado"
    numbers = page.locator("#wa-connected-numbers").inner_text()
    assert numbers == "+55 11 94000-1234 · Imobiliária Sol"
    assert page.get_by_text(ADMINS_ONLY).is_visible()
    main = page.locator("main")
    for name in ("Conectar WhatsApp", "Desconectar", "Usar este número"):
        assert main.get_by_role("button", name=name).count() == 0
    assert page.errors == []
    shot(page, "30-member-view")

    # Without the button, by hand: the API refuses and the connection stays.
    refused = page.evaluate("""() => fetch('/api/v1/whatsapp/connection/disconnect', {
        method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json', 'X-CSRFToken':
                  JSON.parse(document.getElementById('wa-config').textContent).csrfToken},
        body: '{}'}).then(r => r.json().then(body => [r.status, body.error]))""")
    assert refused == [403, "Somente os administradores da organização podem fazer isso."]
    assert Connection.objects.get().status == Connection.Status.CONNECTED
