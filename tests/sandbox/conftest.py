"""Fixtures that drive the Meta sandbox over real HTTP against pytest-django's live server."""

import threading
import time
from typing import Any

import pytest
import requests
from django.conf import settings

from tests.support import wait_for
from whatsapp.models import WebhookLog

GRAPH_VERSION = "v25.0"


class Sandbox:
    """A thin HTTP client for the sandbox: its Graph API and its own state API."""

    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.http = requests.Session()

    @property
    def webhook_url(self) -> str:
        return f"{self.base}/api/v1/whatsapp/webhook"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.http.request(method, f"{self.base}/sandbox/api/{path}", timeout=20, **kwargs)

    def state(self) -> dict[str, Any]:
        response = self.api("GET", "state")
        response.raise_for_status()
        return response.json()

    def switches(self, **values: Any) -> dict[str, Any]:
        response = self.api("POST", "switches", json=values)
        assert response.status_code == 200, response.text
        return response.json()

    def signup(self, scenario: str = "cloud_one", **extra: Any) -> dict[str, Any]:
        response = self.api("POST", "signups", json={"scenario": scenario, **extra})
        assert response.status_code == 201, response.text
        return response.json()

    def graph(self, method: str, path: str, *, token: str | None = None,
              **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, f"{self.base}/sandbox/graph/{GRAPH_VERSION}/{path}",
                                 headers=headers, timeout=20, **kwargs)

    def exchange(self, code: str) -> str:
        response = self.graph("GET", "oauth/access_token", params={
            "client_id": settings.META_APP_ID, "client_secret": settings.META_APP_SECRET,
            "code": code})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def connected(self, scenario: str = "cloud_one", **extra: Any) -> tuple[dict, str]:
        """A finished signup and its business token."""
        result = self.signup(scenario, **extra)
        return result, self.exchange(result["code"])

    def wait_idle(self, timeout: float = 20) -> dict[str, Any]:
        """Polls until no delivery is pending or being sent; returns the state."""
        return wait_for(lambda: _idle(self.state()), timeout=timeout,
                        message="sandbox deliveries still in flight")


def _idle(state: dict[str, Any]) -> dict[str, Any] | None:
    busy = state["in_flight"] or any(d["status"] == "pending" for d in state["deliveries"])
    return None if busy else state


def webhook_rows(min_count: int, *, timeout: float = 20) -> list[WebhookLog]:
    """Waits until the product's webhook endpoint has stored at least `min_count` deliveries."""
    def probe():
        rows = list(WebhookLog.objects.order_by("id"))
        return rows if len(rows) >= min_count else None
    return wait_for(probe, timeout=timeout, message=f"{min_count} rows in whatsapp_webhook_logs")


@pytest.fixture
def sandbox(live_server) -> Sandbox:
    client = Sandbox(live_server.url)
    # Point the sandbox's webhooks at this live server's own product endpoint, quickly.
    client.switches(webhook_url=client.webhook_url, app_installed_delay_ms=0, event_gap_ms=0,
                    retry_delays=[0.2, 0.2])
    yield client
    # Stop the background threads before pytest-django flushes the tables under them.
    client.api("POST", "reset")
    # Close the keep-alive sockets: a live-server thread parked on an idle connection keeps its
    # database connection open, and pytest-django could not drop the test database.
    client.http.close()
    _wait_for_request_threads()


def _wait_for_request_threads(timeout: float = 2) -> None:
    """Best effort: lets the live server's request threads (browser sockets too) wind down."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(
        t.name.endswith("(process_request_thread)") for t in threading.enumerate()
    ):
        time.sleep(0.05)


