"""The Embedded Signup popup in a real browser (Debian's chromium through Playwright).

A partner page served from another origin loads /sandbox/sdk.js, calls FB.login and records
the WA_EMBEDDED_SIGNUP messages and the callback, as the product's settings page will.
"""

import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

from tests.support import chromium, wait_for

# e2e: a real browser, so `-m "not e2e"` skips it with the others (README).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

HERE = Path(__file__).parent


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def opener_origin() -> Iterator[str]:
    """Serves opener.html from 127.0.0.1 (the live server is `localhost`: another origin)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(QuietHandler, directory=str(HERE)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


def open_popup(browser, sandbox, opener_origin: str, extras: dict):
    page = browser.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{opener_origin}/opener.html?sandbox={quote(sandbox.base)}"
              f"&app_id={settings.META_APP_ID}&config_id={settings.META_CONFIG_ID}"
              f"&extras={quote(json.dumps(extras))}")
    page.wait_for_function("() => window.FB && typeof FB.login === 'function'")
    with page.expect_popup() as popup_info:
        page.click("#connect")
    popup = popup_info.value
    popup.set_default_timeout(15_000)
    popup.wait_for_load_state()
    return page, popup


def login_result(page) -> dict:
    return wait_for(lambda: page.evaluate("window.loginResult"), timeout=20,
                    message="the FB.login callback")


def messages(page) -> list[dict]:
    events = page.evaluate("window.events")
    return [json.loads(e["raw"]) | {"_origin": e["origin"]} for e in events]


COEXISTENCE = {"setup": {}, "featureType": "whatsapp_business_app_onboarding",
               "sessionInfoVersion": "3"}


def test_coexistence_finish_posts_only_the_waba_id_and_yields_a_code(sandbox, browser,
                                                                     opener_origin):
    page, popup = open_popup(browser, sandbox, opener_origin, COEXISTENCE)
    popup.get_by_label("Nome da empresa").fill("Imobiliária Sol")
    # Keyboard only for the first step: focus the button and press Enter.
    popup.focus("#next")
    popup.keyboard.press("Enter")
    popup.get_by_role("heading", name="Escolha a conta do WhatsApp Business").wait_for()
    popup.click("#next")
    assert popup.get_by_label("Conectar o app WhatsApp Business existente").is_checked()
    popup.click("#next")
    popup.get_by_label("Sim, compartilhar o histórico de conversas").check()
    popup.click("#next")
    popup.get_by_role("heading", name="Revise e conclua").wait_for()
    popup.click("#next")

    result = login_result(page)
    assert result["status"] == "connected"
    code = result["authResponse"]["code"]
    (message,) = messages(page)
    assert message.pop("_origin") == sandbox.base
    state = sandbox.state()
    waba_id = state["wabas"][0]["id"]
    assert message == {"data": {"waba_id": waba_id}, "type": "WA_EMBEDDED_SIGNUP",
                       "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING", "version": 3}
    # The code works once, server to server, for a token that covers that WABA.
    token = sandbox.exchange(code)
    phones = sandbox.graph("GET", f"{waba_id}/phone_numbers", token=token,
                           params={"fields": "id,is_on_biz_app"}).json()["data"]
    assert phones[0]["is_on_biz_app"] is True
    # Read through the sandbox's HTTP state: the ORM would open a connection in Playwright's
    # greenlet context that nobody closes.
    deliveries = sandbox.wait_idle()["deliveries"]
    assert [d["kinds"] for d in deliveries] == [["partner_added"], ["partner_app_installed"]]
    assert [d["attempts"][-1]["status_code"] for d in deliveries] == [200, 200]


def test_cloud_api_finish_with_two_numbers(sandbox, browser, opener_origin):
    page, popup = open_popup(browser, sandbox, opener_origin, {"setup": {}})
    popup.click("#next")
    popup.click("#next")
    popup.get_by_label("Cadastrar dois números na API de Nuvem (escolher depois)").check()
    popup.click("#next")
    popup.click("#next")  # review → finish (no history step outside coexistence)

    assert login_result(page)["status"] == "connected"
    (message,) = messages(page)
    message.pop("_origin")
    phones = [p["id"] for p in sandbox.state()["phones"]]
    assert len(phones) == 2
    assert message["event"] == "FINISH"
    assert set(message["data"]) == {"phone_number_id", "waba_id", "business_id"}
    assert message["data"]["phone_number_id"] in phones


def test_cancel_reports_the_current_step(sandbox, browser, opener_origin):
    page, popup = open_popup(browser, sandbox, opener_origin, COEXISTENCE)
    popup.click("#next")
    popup.click("#next")
    popup.get_by_role("heading", name="Adicione um número de telefone").wait_for()
    popup.click("#cancel")

    assert login_result(page) == {"authResponse": None, "status": "unknown"}
    (message,) = messages(page)
    message.pop("_origin")
    assert message == {"data": {"current_step": "PHONE_NUMBER_SETUP"},
                       "type": "WA_EMBEDDED_SIGNUP", "event": "CANCEL", "version": 3}
    assert sandbox.state()["wabas"] == []


def test_meta_error_reports_code_message_and_session(sandbox, browser, opener_origin):
    page, popup = open_popup(browser, sandbox, opener_origin, COEXISTENCE)
    popup.get_by_text("Simular um erro da Meta").click()
    popup.select_option("#error_code", "2655093")
    popup.click("#simulate-error")

    assert login_result(page) == {"authResponse": None, "status": "unknown"}
    (message,) = messages(page)
    message.pop("_origin")
    assert message["type"] == "WA_EMBEDDED_SIGNUP" and message["event"] == "CANCEL"
    data = message["data"]
    assert set(data) == {"error_message", "error_code", "session_id", "timestamp"}
    assert data["error_code"] == "2655093"
    assert data["session_id"] == sandbox.state()["signups"][0]["session_id"]
    assert "parceiro" in data["error_message"]


def test_closing_the_popup_mid_flow_is_a_cancel(sandbox, browser, opener_origin):
    page, popup = open_popup(browser, sandbox, opener_origin, COEXISTENCE)
    popup.click("#next")
    popup.get_by_role("heading", name="Escolha a conta do WhatsApp Business").wait_for()
    popup.close(run_before_unload=True)

    assert login_result(page) == {"authResponse": None, "status": "unknown"}
    (message,) = messages(page)
    message.pop("_origin")
    assert message == {"data": {"current_step": "WABA_PHONE_PROFILE_PICKER"},
                       "type": "WA_EMBEDDED_SIGNUP", "event": "CANCEL", "version": 3}
    wait_for(lambda: sandbox.state()["signups"][0]["status"] == "cancelled",
             message="the sandbox to record the abandoned signup")
