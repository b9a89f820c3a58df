"""Issue 20 §2, §4 and §6 in a real browser (chromium, live server, Meta sandbox, a real Celery
worker, and beat where the sweep runs): pipelines that finish, orphans matched by support, a
second number. Every state passes axe-core; screenshots: artifacts/screenshots/20-1x-*.png."""

import os
import subprocess
import sys

import pytest
from celery.app.task import Task
from django.db import connection as db

from tests.e2e import test_backoffice_browser
from tests.e2e.conftest import assert_accessible, shot
from tests.e2e.test_connect_whatsapp import CLOUD_ONE, open_signup, wait_status, walk
from tests.support import wait_for
from whatsapp.models import Connection, Onboarding, PhoneNumber
from whatsapp.onboarding.attribution import orphans_confirm

support_page = test_backoffice_browser.support_page  # the logged-in *suporte* fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture
def fast_pipeline(monkeypatch, settings):
    """Retries 4 s apart, twice (3 attempts), and a 3-second stall time, for the worker
    process (its environment) and this one (what the status says)."""
    monkeypatch.setenv("WHATSAPP_PIPELINE_RETRY_DELAYS", "4,4")
    monkeypatch.setenv("WHATSAPP_PIPELINE_STALL_SECONDS", "3")
    settings.WHATSAPP_PIPELINE_RETRY_DELAYS = [4, 4]
    settings.WHATSAPP_PIPELINE_STALL_SECONDS = 3


@pytest.fixture
def beat(fast_pipeline, worker, tmp_path, settings):
    """A real `celery beat` (DatabaseScheduler) whose only entry is the pipeline sweep, every
    second (the product's default is every minute)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    PeriodicTask.objects.create(name="pipeline sweep", task="whatsapp.tasks.sweep_pipelines",
                                interval=every_second)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "TEST_DATABASE_URL": (f"postgres://{db.settings_dict['USER']}@"
                                 f"{db.settings_dict['HOST']}:{db.settings_dict['PORT']}/"
                                 f"{db.settings_dict['NAME']}"),
           "TEST_REDIS_URL": settings.REDIS_URL}
    log = tmp_path / "beat.log"
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "INFO",
                             "-s", str(tmp_path / "beat-schedule")],
                            cwd=settings.BASE_DIR, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Sending due task pipeline sweep" in log.read_text()
                 or proc.poll() is not None, timeout=30, message="beat sending the sweep")
        assert proc.poll() is None, log.read_text()[-2000:]
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_retries_run_out_then_the_tenant_retries_and_connects(admin_page, sandbox,
                                                              fast_pipeline, worker):
    page = admin_page
    # Meta's subscribe endpoint answers 503 to every call until the fault is removed.
    sandbox.api("POST", "faults", json={"path": r"/subscribed_apps$", "method": "POST",
                                        "status": 503, "code": 2})
    walk(open_signup(page), CLOUD_ONE)

    retrying = page.locator("#wa-retrying")
    retrying.wait_for()
    assert "tentativa 2 de 3" in retrying.inner_text()
    assert_accessible(page, "connecting, retrying")
    shot(page, "20-20-pipeline-retrying")

    wait_status(page, "error", timeout=60)
    assert "Código para o suporte: meta_unavailable" in page.locator("#wa-status").inner_text()
    retry = page.get_by_role("button", name="Tentar novamente")
    assert retry.is_visible()
    assert_accessible(page, "error after the last attempt")
    shot(page, "20-21-pipeline-error-with-code")

    sandbox.api("DELETE", "faults")  # Meta is back
    retry.click()
    wait_status(page, "connected")
    connection = Connection.objects.get()
    assert (connection.status, connection.error_code, connection.pipeline_attempts) == (
        "connected", "", 0)
    assert_accessible(page, "connected after a retry")
    shot(page, "20-22-retried-and-connected")


def test_a_lost_pipeline_enqueue_is_resumed_by_the_sweep(admin_page, sandbox, beat, monkeypatch):
    page = admin_page
    publish = Task.apply_async

    def broker_loses_the_pipeline(task, *args, **kwargs):
        if task.name == "whatsapp.tasks.run_connection_pipeline":
            raise ConnectionError("broker down")
        return publish(task, *args, **kwargs)

    monkeypatch.setattr(Task, "apply_async", broker_loses_the_pipeline)
    walk(open_signup(page), CLOUD_ONE)
    # The connection is bound, its pipeline never enqueued: beat's sweep finds it (stall 3 s).
    wait_status(page, "connected", timeout=60)
    connection = Connection.objects.get()
    assert connection.pipeline_step == "done"
    assert PhoneNumber.objects.get().registration_status == "registered"
    shot(page, "20-23-lost-enqueue-resumed-by-the-sweep")


def test_hosted_link_orphan_is_claimed_by_support_for_the_suggested_tenant(
        admin_page, support_page, sandbox, worker, settings):
    page = admin_page
    page.add_init_script("window.open = () => null")  # the browser blocks Meta's popup
    page.reload()
    page.get_by_role("button", name="Conectar WhatsApp").click()
    link = page.get_by_role("link", name="Abra a página de conexão da Meta")
    with page.expect_popup() as info:
        link.click()
    hosted = info.value
    hosted.set_default_timeout(20_000)
    walk(hosted, CLOUD_ONE)  # a new business portfolio: nothing ties it to this tenant
    hosted.close()

    orphan = wait_for(lambda: Connection.objects.awaiting_browser().first(), timeout=30,
                      message="the unattributed PARTNER_ADDED")
    settings.WHATSAPP_ORPHAN_GRACE_SECONDS = 0
    orphans_confirm()  # what the alert evaluation does once the grace period is over
    page.reload()
    support_notice = page.locator("#wa-support")
    support_notice.wait_for()
    assert "Nosso suporte está confirmando" in support_notice.inner_text()
    assert_accessible(page, "support reviewing an orphan")
    shot(page, "20-24-tenant-told-support-is-on-it")

    support = support_page
    support.goto(f"{support.base}/admin/whatsapp/orphanconnection/{orphan.pk}/claim/")
    suggestions = support.locator("#claim-suggestions")
    assert "Imobiliária Sol" in suggestions.inner_text()
    shot(support, "20-25-claim-screen-suggests-the-tenant")
    suggestions.get_by_role("button", name="Imobiliária Sol").click()
    support.locator("#confirm-claim").click()
    support.get_by_text("reivindicada para Imobiliária Sol").wait_for()

    wait_status(page, "connected")
    connection = Connection.objects.get()
    assert (connection.organization, connection.attributed_by) == (page.organization, "claim")
    assert connection.token_source == "system_user"
    shot(page, "20-26-claimed-and-connected")


def test_a_second_number_is_added_and_both_are_listed(admin_page, sandbox, worker):
    page = admin_page
    walk(open_signup(page), CLOUD_ONE)
    wait_status(page, "connected")
    assert page.locator("#wa-connected-numbers li").count() == 1
    # "WhatsApp conectado" is said once (the card), not also by the status line.
    assert page.locator("text=WhatsApp conectado >> visible=true").count() == 1

    walk(open_signup(page, button="Adicionar outro número"), CLOUD_ONE)
    wait_for(lambda: Connection.objects.filter(status="connected").count() == 2, timeout=60,
             message="the second connection")
    page.locator("#wa-connected-numbers li").nth(1).wait_for()
    assert page.locator("#wa-connected-numbers li").count() == 2
    assert Onboarding.objects.filter(status=Onboarding.Status.COMPLETED).count() == 2
    assert_accessible(page, "two numbers connected")
    shot(page, "20-27-second-number-added")

    # Disconnect the older one only.
    older = Connection.objects.order_by("created_at").first()
    page.locator(f"#wa-connected-numbers li[data-connection='{older.pk}'] button").click()
    page.locator("#wa-confirm-yes").click()
    page.locator("#wa-connected-numbers li").nth(1).wait_for(state="detached")
    statuses = dict(Connection.objects.values_list("pk", "status"))
    assert statuses[older.pk] == "disconnected"
    assert sorted(statuses.values()) == ["connected", "disconnected"]
    wait_status(page, "connected")  # the newer number, still connected
    shot(page, "20-28-one-of-two-disconnected")
