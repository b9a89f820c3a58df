"""`GET /metrics`: Prometheus text after real deliveries, token protection, multiprocess sums."""

import json
import os
import re
import subprocess
import sys

import pytest
from django.conf import settings
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from ops.models import AlertState
from tests.factories import ConnectionFactory, fixture_numbers
from tests.ingest_support import deliver
from tests.meta import GRAPH, load, post_signed
from whatsapp.core import metrics
from whatsapp.core.graph import GraphClient, GraphError
from whatsapp.models import Connection, WebhookLog
from whatsapp.webhooks.process import webhook_process

pytestmark = pytest.mark.django_db

TOKEN = "metrics-test-token"


@pytest.fixture(autouse=True)
def _token(settings):
    settings.METRICS_TOKEN = TOKEN


def scrape(client) -> dict[tuple[str, tuple], float]:
    """Every sample of one scrape as {(name, sorted labels): value}."""
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.content.decode())
            for s in family.samples}


def sample(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- token ----------------------------------------------------------------------------------
def test_no_token_configured_means_no_endpoint(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_missing_credentials_401_wrong_token_403_right_token_200(client):
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 403 and b"qualifica" not in wrong.content
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


# --- counters after real deliveries -----------------------------------------------------------
def test_deliveries_through_the_webhook_url_move_the_counters(client):
    fixture_numbers()
    before = scrape(client)

    deliver(client, load("messages_text_inbound.json"))                       # processed
    deliver(client, load("unknown_field.json"))                               # stored only
    assert post_signed(client, load("messages_text_inbound.json"), secret="forged").status_code \
        == 403
    after = scrape(client)

    def moved(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("qualifica_webhook_requests_total", result="stored") == 2
    assert moved("qualifica_webhook_requests_total", result="invalid_signature") == 1
    assert moved("qualifica_webhook_deliveries_stored_total", field="messages") == 1
    assert moved("qualifica_webhook_deliveries_stored_total", field="some_future_field") == 1
    assert moved("qualifica_webhook_deliveries_total", outcome="processed", field="messages") == 1
    assert moved("qualifica_webhook_deliveries_total", outcome="processed",
                 field="some_future_field") == 1
    assert moved("qualifica_webhook_processing_delay_seconds_count", field="messages") == 1
    assert moved("qualifica_webhook_processing_delay_seconds_bucket", field="messages",
                 le="+Inf") == 1


def test_parked_failed_and_dead_outcomes_are_counted_by_field(client, settings):
    settings.WHATSAPP_WEBHOOK_MAX_ATTEMPTS = 1
    before = scrape(client)
    # No number configured: the message waits for it.
    deliver(client, load("messages_text_inbound.json"), expect=WebhookLog.Status.PARKED)
    # A body Meta signed that is not a delivery at all: dead at once, field unknown.
    assert post_signed(client, b'{"object": 1}').status_code == 200
    assert webhook_process(WebhookLog.objects.latest("id").pk) == WebhookLog.Status.DEAD
    after = scrape(client)
    assert (sample(after, "qualifica_webhook_deliveries_total", outcome="parked", field="messages")
            - sample(before, "qualifica_webhook_deliveries_total", outcome="parked",
                     field="messages")) == 1
    assert (sample(after, "qualifica_webhook_deliveries_total", outcome="dead", field="unknown")
            - sample(before, "qualifica_webhook_deliveries_total", outcome="dead",
                     field="unknown")) == 1
    # Parked and dead deliveries are gauges too (read from the table at scrape time).
    assert sample(after, "qualifica_webhook_deliveries_by_status", status="parked") == 1
    assert sample(after, "qualifica_webhook_deliveries_by_status", status="dead") == 1


# --- gauges computed at scrape time -----------------------------------------------------------
def test_backlog_inbox_connections_and_alerts_are_read_at_scrape_time(
        client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the announce: LPUSH to the inbox
        assert post_signed(client, load("messages_text_inbound.json")).status_code == 200
        assert post_signed(client, load("unknown_field.json")).status_code == 200
    ConnectionFactory(status=Connection.Status.CONNECTED)
    ConnectionFactory(status=Connection.Status.AWAITING_PHONE_SELECTION)
    AlertState.objects.create(key="token_expiring_7d:102000000000101", active=True)
    AlertState.objects.create(key="token_expiring_7d:102000000000202", active=True)
    AlertState.objects.create(key="redis_down", active=False)

    samples = scrape(client)
    assert sample(samples, "qualifica_webhook_backlog") == 2
    assert sample(samples, "qualifica_webhook_deliveries_by_status", status="received") == 2
    assert sample(samples, "qualifica_webhook_backlog_oldest_seconds") >= 0
    # Both are live deliveries: they wait in the live lane's inbox.
    assert sample(samples, "qualifica_webhook_inbox_length", lane="live") == 2
    assert sample(samples, "qualifica_webhook_inbox_length", lane="bulk") == 0
    assert sample(samples, "qualifica_whatsapp_connections", status="connected") == 1
    assert sample(samples, "qualifica_whatsapp_connections",
                  status="awaiting_phone_selection") == 1
    assert sample(samples, "qualifica_whatsapp_sends", status="queued") == 0
    assert sample(samples, "qualifica_alerts_firing", alert="token_expiring_7d") == 2
    assert sample(samples, "qualifica_alerts_firing", alert="redis_down") == 0
    # No WABA id in any label.
    assert not any("102000000000101" in str(labels) for _, labels in samples)
    assert all(sample(samples, "qualifica_metrics_source_up", source=source) == 1
               for source in ("webhooks", "inbox", "connections", "sends", "alerts"))


# --- Graph calls ------------------------------------------------------------------------------
def test_graph_calls_are_counted_by_endpoint_template_and_outcome(client, graph):
    graph.get(f"{GRAPH}/102000000000101/phone_numbers", json={"data": []})
    graph.get(f"{GRAPH}/102000000000202/phone_numbers", status=401, json={
        "error": {"message": "Invalid OAuth access token", "code": 190, "type": "OAuthException"}})
    before = scrape(client)
    GraphClient("EAAsecret-token").phone_numbers("102000000000101")
    with pytest.raises(GraphError):
        GraphClient("EAAsecret-token").phone_numbers("102000000000202")
    after = scrape(client)

    def moved(**labels):
        return (sample(after, "qualifica_graph_api_calls_total", **labels)
                - sample(before, "qualifica_graph_api_calls_total", **labels))

    assert moved(method="GET", endpoint="{id}/phone_numbers", outcome="ok") == 1
    assert moved(method="GET", endpoint="{id}/phone_numbers", outcome="credential_error") == 1
    text = str(after)
    assert "102000000000101" not in text and "EAAsecret" not in text


# --- multiprocess -----------------------------------------------------------------------------
def test_counters_of_other_processes_add_up_in_one_scrape(client):
    """A second process writes into the same PROMETHEUS_MULTIPROC_DIR (as a Celery worker
    beside gunicorn does); one scrape sees both processes' increments."""
    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR")  # config/settings/test.py sets it
    before = sample(scrape(client), "qualifica_webhook_requests_total", result="bad_request")
    metrics.webhook_request("bad_request")
    metrics.webhook_request("bad_request")
    code = ("from whatsapp.core import metrics\n"
            "for _ in range(3):\n    metrics.webhook_request('bad_request')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR,
                          env=dict(os.environ), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    after = sample(scrape(client), "qualifica_webhook_requests_total", result="bad_request")
    assert after - before == 5


def test_a_container_cleans_only_its_own_files_at_start(tmp_path, monkeypatch):
    """Web and worker containers share the directory and pids repeat across containers: files
    carry the host name, and `python -m config.prometheus clean` removes only this host's."""
    from config import prometheus

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    mine = prometheus.process_identifier(7)
    assert mine.endswith("-7") and "_" not in mine
    (tmp_path / f"counter_{mine}.db").write_bytes(b"")
    (tmp_path / f"gauge_livesum_{mine}.db").write_bytes(b"")
    (tmp_path / "counter_other-host-7.db").write_bytes(b"")
    prometheus.mark_process_dead(7)  # gunicorn's child_exit: live gauges only
    assert {p.name for p in tmp_path.iterdir()} == {f"counter_{mine}.db",
                                                   "counter_other-host-7.db"}
    done = subprocess.run([sys.executable, "-m", "config.prometheus", "clean"],
                          cwd=settings.BASE_DIR, env={**os.environ}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["counter_other-host-7.db"]


def test_the_grafana_dashboard_uses_only_metrics_the_endpoint_serves(client):
    """ops/grafana/qualifica-whatsapp.json: every qualifica_* name in its queries is a metric
    of whatsapp.core.metrics or a gauge of the scrape (a renamed metric breaks this)."""
    dashboard = json.loads((settings.BASE_DIR / "ops" / "grafana" / "qualifica-whatsapp.json")
                           .read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {re.sub(r"_(total|bucket|count|sum)$", "", name)
            for expr in exprs for name in re.findall(r"qualifica_[a-z_]+", expr)}
    defined = {m._name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    served = {family.name for family in text_string_to_metric_families(text)}
    assert used and used <= defined | served, used - defined - served
    assert {"qualifica_webhook_backlog", "qualifica_graph_api_calls",
            "qualifica_webhook_processing_delay_seconds", "qualifica_alerts_firing"} <= used
