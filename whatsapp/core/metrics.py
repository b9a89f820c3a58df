"""The Prometheus metrics the product's code increments (web, workers), in one module.

Counters and histograms only: every process adds to its own series and `/metrics`
(ops.metrics) sums the processes (`config.prometheus`, multiprocess mode). Gauges that
describe the database or Redis (backlog, connections, sends, alerts) are computed at scrape
time by ops instead, so they never disagree between processes.

Labels are bounded: a delivery's `field` is kept only when it looks like a Meta field name,
Graph endpoints are path templates (`{id}/subscribed_apps`), never ids or tokens.
"""

import re
from collections.abc import Iterable
from datetime import datetime

from django.utils import timezone
from prometheus_client import Counter, Histogram

from config import prometheus

prometheus.setup()  # before any metric below is created

WEBHOOK_REQUESTS = Counter(
    "qualifica_webhook_requests", "POSTs received on the webhook URL, by what became of them "
    "(stored, invalid_signature, rate_limited, too_large, bad_request, unavailable).",
    ["result"],
)
DELIVERIES_STORED = Counter(
    "qualifica_webhook_deliveries_stored", "Signed deliveries stored, once per field they carry.",
    ["field"],
)
DELIVERIES = Counter(
    "qualifica_webhook_deliveries", "Processing outcomes (processed, failed, dead, parked), once "
    "per field of the delivery.", ["outcome", "field"],
)
PROCESSING_DELAY = Histogram(
    "qualifica_webhook_processing_delay_seconds",
    "From a delivery's arrival (received_at) to its processing, for processed deliveries.",
    ["field"], buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, 21600),
)
GRAPH_CALLS = Counter(
    "qualifica_graph_api_calls", "Graph API calls by method, endpoint template and outcome "
    "(ok, network_error, credential_error, transient_error, error).",
    ["method", "endpoint", "outcome"],
)
GRAPH_DURATION = Histogram(
    "qualifica_graph_api_call_duration_seconds", "Graph API call duration by endpoint template.",
    ["endpoint"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
)

_FIELD = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SEGMENT = re.compile(r"^[a-z][a-z_]*$")


def field_label(field: str) -> str:
    return field if _FIELD.match(field or "") else "other"


def _field_labels(fields: Iterable[str]) -> list[str]:
    return sorted({field_label(f) for f in fields}) or ["unknown"]


def webhook_request(result: str) -> None:
    WEBHOOK_REQUESTS.labels(result=result).inc()


def delivery_stored(fields: Iterable[str]) -> None:
    """A signed delivery was stored: counted by the change fields it carries (the byte scan
    that chose its lane, `whatsapp.core.lanes.fields_in`: the request never parses the JSON)."""
    webhook_request("stored")
    for field in _field_labels(fields):
        DELIVERIES_STORED.labels(field=field).inc()


def delivery_outcome(outcome: str, fields: Iterable[str] | None,
                     received_at: datetime | None = None) -> None:
    """One processing outcome: processed (with its delay), failed, dead or parked."""
    labels = _field_labels(fields or ())
    delay = None
    if received_at is not None:
        delay = max((timezone.now() - received_at).total_seconds(), 0.0)
    for field in labels:
        DELIVERIES.labels(outcome=outcome, field=field).inc()
        if delay is not None:
            PROCESSING_DELAY.labels(field=field).observe(delay)


def endpoint_template(path: str) -> str:
    """`1234/subscribed_apps` → `{id}/subscribed_apps`: ids (and anything that is not a plain
    lowercase word) never become label values."""
    segments = [s for s in path.split("?", 1)[0].strip("/").split("/") if s]
    return "/".join(s if _SEGMENT.match(s) else "{id}" for s in segments) or "/"


def graph_call(method: str, path: str, outcome: str, seconds: float) -> None:
    endpoint = endpoint_template(path)
    GRAPH_CALLS.labels(method=method.upper(), endpoint=endpoint, outcome=outcome).inc()
    GRAPH_DURATION.labels(endpoint=endpoint).observe(seconds)
