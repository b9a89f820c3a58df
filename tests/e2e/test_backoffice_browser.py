"""Support staff in the Django admin (unfold): dashboard, orphan claim, dead-letter replay."""

import pytest
from django.contrib.auth.models import Group

from audit.models import AuditLog
from tests.e2e.conftest import PASSWORD, shot
from tests.factories import OnboardingFactory, OrganizationFactory, UserFactory
from tests.meta import load, post_signed
from tests.support import wait_for
from whatsapp.backoffice.support import SUPPORT_GROUP
from whatsapp.models import Connection, WebhookLog
from whatsapp.webhooks.process import webhook_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture
def support_page(browser, live_server, transactional_db):
    user = UserFactory(email="suporte@qualifica.test", is_staff=True)
    user.groups.add(Group.objects.get(name=SUPPORT_GROUP))
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="pt-BR")
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert page.url == f"{live_server.url}/admin/", (page.url, page.content()[:3000])
    page.base = live_server.url
    page.user = user
    yield page
    context.close()


def test_support_reads_the_onboarding_dashboard(support_page):
    org = OrganizationFactory(name="Imobiliária Sol")
    OnboardingFactory(organization=org, status="cancelled", current_step="PHONE_NUMBER_SETUP")
    OnboardingFactory(organization=org)
    page = support_page
    page.reload()
    page.get_by_role("heading", name="Funil de onboarding").wait_for()
    assert page.locator("[data-kpi=started]").inner_text() == "2"
    assert page.get_by_text("Adicionando o número de telefone").is_visible()
    assert page.locator("canvas.chart").count() == 2
    shot(page, "20-admin-dashboard")
    page.select_option("select[name=org]", label="Imobiliária Sol")
    page.get_by_role("button", name="Aplicar").click()
    assert "org=" in page.url
    assert page.locator("[data-kpi=started]").inner_text() == "2"


def test_support_claims_an_orphan(support_page, client, worker, sandbox):
    org = OrganizationFactory(name="Imobiliária Lua")
    assert post_signed(client, load("account_update_partner_added.json")).status_code == 200
    # The worker or this call processes it, whichever claims the delivery first.
    webhook_process(WebhookLog.objects.latest("id").pk)
    orphan = wait_for(lambda: Connection.objects.orphans().first(), timeout=30,
                      message="PARTNER_ADDED to create the orphan")
    page = support_page

    page.goto(f"{page.base}/admin/whatsapp/orphanconnection/")
    shot(page, "21-orphan-list")
    page.get_by_role("link", name="Reivindicar").click()
    page.select_option("#id_organization", label="Imobiliária Lua")
    page.get_by_role("button", name="Revisar").click()
    confirm = page.locator("#claim-orphan")
    assert "Imobiliária Lua" in confirm.inner_text()
    shot(page, "22-orphan-claim-confirmation")
    page.get_by_role("button", name="Sim, reivindicar").click()

    page.wait_for_url(f"**/admin/whatsapp/connection/{orphan.pk}/change/")
    shot(page, "23-claimed-connection")
    claimed = Connection.objects.get(pk=orphan.pk)
    assert claimed.organization == org
    entry = AuditLog.objects.get(action=AuditLog.Action.WABA_CLAIMED)
    assert entry.actor == page.user
    # The normal pipeline runs (the sandbox knows no such WABA, so it stops with a Graph error
    # for support to see; a real claimed WABA would go on to its numbers).
    wait_for(lambda: Connection.objects.get(pk=orphan.pk).pipeline_step, timeout=30,
             message="the pipeline to run for the claimed WABA")


def test_support_replays_a_dead_webhook(support_page, client, worker):
    assert post_signed(client, load("unknown_field.json")).status_code == 200
    log = WebhookLog.objects.get()
    # As if every attempt had failed before a fix was deployed.
    WebhookLog.objects.filter(pk=log.pk).update(
        status=WebhookLog.Status.DEAD, attempts=8,
        last_error="KeyError: 'some_future_array'", traceback="Traceback …")
    page = support_page

    page.goto(f"{page.base}/admin/whatsapp/webhooklog/dashboard/")
    assert page.locator("[data-kpi=dead]").inner_text() == "1"
    shot(page, "24-failed-webhooks-dashboard")
    page.goto(f"{page.base}/admin/whatsapp/webhooklog/{log.pk}/change/")
    assert page.get_by_text("some_future_field").first.is_visible()
    shot(page, "25-dead-webhook-detail")

    page.goto(f"{page.base}/admin/whatsapp/webhooklog/?status__exact=dead")
    page.locator("input.action-select").first.check()
    page.select_option("select[name=action]", "replay_selected")
    page.locator("button[name=index], button[type=submit][title], #changelist-actions button"
                 ).first.click()
    wait_for(lambda: WebhookLog.objects.get(pk=log.pk).status == WebhookLog.Status.PROCESSED,
             timeout=30, message="the replayed delivery to be processed by the worker")
    shot(page, "26-replayed")
    assert AuditLog.objects.filter(action=AuditLog.Action.WEBHOOK_REPLAYED).exists()
