"""Support in a real browser (issue 18 items 3 and 4): the dashboard's stalled-pipeline tile →
the stalled tenant's connection → resume → the pipeline (a real Celery worker against the Meta
sandbox) takes it to connected. Screenshots of each screen under artifacts/screenshots/."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditLog
from tests.e2e import test_backoffice_browser
from tests.e2e.conftest import shot
from tests.factories import ConnectionFactory, OrganizationFactory
from tests.support import wait_for
from whatsapp.models import Connection, PhoneNumber

support_page = test_backoffice_browser.support_page  # the logged-in *suporte* fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_support_resumes_a_stalled_pipeline_from_the_dashboard(support_page, sandbox, worker,
                                                               live_server):
    # Meta's side: a finished signup whose business token we hold. Its webhooks go nowhere:
    # this tenant's pipeline was started and then stalled (its task lost with a worker).
    sandbox.switches(webhook_url=f"{live_server.url}/nowhere", retry_delays=[])
    result, token = sandbox.connected("cloud_one")
    org = OrganizationFactory(name="Imobiliária Parada")
    stalled = ConnectionFactory(organization=org, waba_id=result["waba_id"], with_token=True,
                                token=token, status=Connection.Status.CONNECTING,
                                pipeline_step="token", attributed_by="browser_callback")
    Connection.objects.filter(pk=stalled.pk).update(
        updated_at=timezone.now() - timedelta(minutes=12))
    page = support_page

    page.goto(f"{page.base}/admin/")
    tile = page.locator("[data-tile=stalled]")
    assert tile.locator("[data-count]").inner_text() == "1"
    tile.scroll_into_view_if_needed()
    shot(page, "30-support-dashboard-work-tiles")

    tile.click()
    page.wait_for_url("**/admin/whatsapp/connection/?attention=stalled")
    assert page.get_by_role("link", name=result["waba_id"]).is_visible()
    shot(page, "31-stalled-pipelines-list")

    page.goto(f"{page.base}/admin/whatsapp/connection/{stalled.pk}/change/")
    assert "Conectando" in page.content()
    shot(page, "32-stalled-connection")

    page.go_back()
    page.locator("input.action-select").first.check()
    page.select_option("select[name=action]", "rerun_pipeline")
    page.locator("button[name=index], button[type=submit][title], #changelist-actions button"
                 ).first.click()
    page.get_by_text("Pipeline retomado para 1 conexão(ões)").wait_for()
    shot(page, "33-pipeline-resumed-message")

    wait_for(lambda: Connection.objects.get(pk=stalled.pk).status == Connection.Status.CONNECTED,
             timeout=60, message="the resumed pipeline to connect the number")
    entry = AuditLog.objects.get(action=AuditLog.Action.PIPELINE_RESUMED)
    assert entry.actor == page.user and entry.target == f"waba:{result['waba_id']}"
    number = PhoneNumber.objects.get(connection=stalled)
    assert number.status == PhoneNumber.Status.CONFIGURED

    page.goto(f"{page.base}/admin/whatsapp/connection/{stalled.pk}/change/")
    body = page.content()
    assert "Conectado" in body and "Pipeline retomado pelo suporte" in body
    shot(page, "34-connection-connected")

    page.goto(f"{page.base}/admin/")
    assert page.locator("[data-tile=stalled] [data-count]").inner_text() == "0"
    page.locator("#work").scroll_into_view_if_needed()
    shot(page, "35-dashboard-nothing-stalled")
