"""End-to-end: a real browser (Debian's chromium via Playwright) on the live server, the Meta
sandbox over HTTP, and a real Celery worker process running the onboarding pipeline."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from organizations.models import Membership
from tests.factories import MembershipFactory
from tests.sandbox.conftest import Sandbox, _wait_for_request_threads
from tests.support import chromium, solo_worker

SCREENSHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"
PASSWORD = "senha-forte-123"
SYSTEM_USER_TOKEN = "EAAsandbox-system-user"


@pytest.fixture
def e2e_settings(live_server, settings):
    settings.META_GRAPH_API_URL = f"{live_server.url}/sandbox/graph"
    settings.META_ONBOARDING_URL = f"{live_server.url}/sandbox/onboard/"
    settings.META_SYSTEM_USER_TOKEN = SYSTEM_USER_TOKEN
    return settings


@pytest.fixture
def sandbox(live_server, e2e_settings) -> Iterator[Sandbox]:
    client = Sandbox(live_server.url)
    client.switches(webhook_url=client.webhook_url, app_installed_delay_ms=0, event_gap_ms=0,
                    retry_delays=[0.3, 0.5, 1, 1, 2, 2, 3])
    yield client
    client.api("POST", "reset")
    client.http.close()


@pytest.fixture
def worker(live_server, e2e_settings, tmp_path) -> Iterator[subprocess.Popen]:
    """A real `celery worker` on the test database and Redis, talking to the sandbox."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "TEST_REDIS_URL": settings.REDIS_URL,
        "META_GRAPH_API_URL": e2e_settings.META_GRAPH_API_URL,
        "META_ONBOARDING_URL": e2e_settings.META_ONBOARDING_URL,
        "META_SYSTEM_USER_TOKEN": SYSTEM_USER_TOKEN,
    }
    log = tmp_path / "worker.log"
    with solo_worker(env, log, settings.BASE_DIR) as proc:
        yield proc


@pytest.fixture
def browser() -> Iterator:
    with chromium() as browser:
        yield browser
    # Keep-alive sockets hold live-server threads (and DB connections): let them end.
    _wait_for_request_threads(timeout=30)


@pytest.fixture
def admin_page(browser, live_server, transactional_db):
    """A logged-in imobiliária admin on Configurações › Conexão WhatsApp."""
    membership = MembershipFactory(user__email="admin@sol.com.br",
                                   organization__name="Imobiliária Sol",
                                   role=Membership.Role.ADMIN)
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="pt-BR")
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("E-mail").fill("admin@sol.com.br")
    page.get_by_label("Senha").fill(PASSWORD)
    page.get_by_role("button", name="Entrar").click()
    page.goto(f"{live_server.url}/dashboard/settings/whatsapp")
    page.organization = membership.organization
    yield page
    context.close()


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# axe-core's engine, fetched from the npm registry by bin/test (bin/ensure-axe), never committed.
AXE_CORE_JS = Path(os.environ.get("AXE_CORE_JS")
                   or Path(settings.BASE_DIR) / ".cache" / "axe-core-4.14.1" / "axe.min.js")
BLOCKING_IMPACTS = ("serious", "critical")


def axe_violations(page) -> list[dict]:
    """Runs axe-core (WCAG 2.x A/AA rules) on the page as it is now; returns the serious and
    critical violations, each with the offending nodes' selectors."""
    if not AXE_CORE_JS.exists():
        pytest.fail(f"{AXE_CORE_JS} is missing: run the tests through bin/test (bin/ensure-axe "
                    "fetches axe-core from the npm registry)")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE_CORE_JS.read_text())
    result = page.evaluate("""() => axe.run(document, {
        runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
        resultTypes: ["violations"]})""")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]]}
            for v in result["violations"] if v["impact"] in BLOCKING_IMPACTS]


def assert_accessible(page, state: str) -> None:
    violations = axe_violations(page)
    assert not violations, f"axe-core, state {state!r}: {violations}"
