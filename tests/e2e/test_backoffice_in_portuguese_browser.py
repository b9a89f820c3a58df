"""Issue 18 §1 in a real browser: support's dashboard and a list read in pt-BR (screenshots)."""

import pytest
from django.contrib.auth.models import Group

from tests.e2e.conftest import PASSWORD, shot
from tests.factories import ConnectionFactory, OnboardingFactory, PhoneNumberFactory, UserFactory
from whatsapp.backoffice.support import SUPPORT_GROUP
from whatsapp.models import Connection, Onboarding

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def support_user():
    user = UserFactory(email="suporte@qualifica.test", is_staff=True)
    user.groups.add(Group.objects.get(name=SUPPORT_GROUP))
    return user


def signed_in(browser, live_server, user, next_url: str, *, height: int):
    """A pt-BR browser page of `user`, signed in through the admin's login, at `next_url`."""
    context = browser.new_context(viewport={"width": 1400, "height": height}, locale="pt-BR")
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/admin/login/?next={next_url}")
    page.get_by_label("E-mail").fill(user.username)
    page.get_by_label("Senha").fill(PASSWORD)
    page.locator("button[type=submit]").click()
    return context, page


def test_support_reads_the_dashboard_and_a_list_in_portuguese(browser, live_server):
    user = support_user()
    connection = ConnectionFactory(organization__name="Imobiliária Sol",
                                   status=Connection.Status.AWAITING_PHONE_SELECTION,
                                   pipeline_step="awaiting_phone_selection")
    PhoneNumberFactory(connection=connection, quality_rating="GREEN")
    OnboardingFactory(organization=connection.organization, status=Onboarding.Status.CANCELLED,
                      current_step="PHONE_NUMBER_SETUP")
    context, page = signed_in(browser, live_server, user, "/admin/", height=1000)
    page.get_by_role("heading", name="Funil de onboarding").wait_for()
    assert page.get_by_text("Adicionando o número de telefone").is_visible()
    assert page.get_by_text("Webhooks com falha").first.is_visible()
    shot(page, "30-admin-dashboard-pt-br")

    page.goto(f"{live_server.url}/admin/whatsapp/connection/")
    row = page.locator("#result_list tbody tr").first
    assert "Aguardando escolha do número" in row.inner_text()
    assert "awaiting_phone_selection" not in page.locator("#result_list").inner_text()
    assert page.get_by_placeholder("Digite para buscar").count() >= 1  # list and command search
    shot(page, "31-admin-connections-list-pt-br")
    context.close()


def test_support_tries_a_failed_media_download_again_in_portuguese(browser, live_server):
    from django.utils import timezone

    from audit.models import AuditLog
    from whatsapp.models import Message, MessageMedia

    user = support_user()
    number = PhoneNumberFactory(connection=ConnectionFactory(organization__name="Imobiliária Sol"),
                                display_phone_number="5511940009876")
    message = Message.objects.create(organization=number.organization, config=number,
                                     wamid="wamid.FOTO1", direction=Message.Direction.INBOUND,
                                     type="image", timestamp=timezone.now(), media_id="m-foto1")
    failed = MessageMedia.objects.create(
        organization=number.organization, message=message, media_id="m-foto1", attempts=5,
        status=MessageMedia.Status.FAILED, error="Graph error None (HTTP 503): Service Unavailable")
    context, page = signed_in(browser, live_server, user, "/admin/whatsapp/messagemedia/",
                              height=900)
    page.get_by_role("heading", name="Mídias das mensagens").wait_for()
    row = page.locator("#result_list tbody tr").first
    assert "Não foi possível baixar" in row.inner_text() and "HTTP 503" in row.inner_text()
    shot(page, "32-admin-media-failed-pt-br")

    page.locator("input.action-select").first.check()
    page.select_option("select[name=action]", label="Tentar baixar de novo")
    page.locator("button[name=index], button[type=submit][title], #changelist-actions button"
                 ).first.click()
    page.get_by_text("1 download de mídia na fila de novo.").wait_for()
    shot(page, "33-admin-media-retried-pt-br")
    context.close()

    failed.refresh_from_db()
    assert (failed.attempts, failed.error) == (0, "")
    assert AuditLog.objects.filter(action=AuditLog.Action.MEDIA_FETCH_RETRIED,
                                   actor=user).count() == 1
