"""`GET /metrics`: Prometheus text format for the whole deployment.

Counters and histograms come from every process's files in `PROMETHEUS_MULTIPROC_DIR`
(gunicorn workers and Celery processes add up; `config.prometheus`), or from this process
alone when the variable is unset. Gauges about the database and Redis are computed here, at
scrape time (`StateCollector`), so every scrape sees the same truth whichever worker answers.

Protected by `METRICS_TOKEN` (`Authorization: Bearer …`): unset answers 404 (the endpoint does
not exist), no or another scheme 401, a wrong token 403.
"""

import hmac
import logging
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

from config import prometheus
from whatsapp.core.lanes import LANES
from whatsapp.models import Connection, OutboundMessage, WebhookLog
from whatsapp.webhooks import inbox

from .models import AlertState

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Statuses counted at scrape time: the unfinished ones, all covered by the partial index
# `webhook_unfinished_idx` (status <> 'processed'); processed ones are a counter.
UNFINISHED = [s for s in WebhookLog.Status if s != WebhookLog.Status.PROCESSED]


class StateCollector(Collector):
    """Gauges read from the tables and Redis; a source that fails is reported by
    `qualifica_metrics_source_up{source}` = 0 instead of failing the scrape."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("qualifica_metrics_source_up",
                               "1 when this scrape could read the source.", labels=["source"])
        for source, read in (("webhooks", _webhooks), ("inbox", _inbox),
                             ("connections", _connections), ("sends", _sends),
                             ("alerts", _alerts)):
            try:
                families = list(read())
            except Exception as exc:
                logger.warning("metrics: %s unreadable (%s)", source, type(exc).__name__)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up


def _webhooks() -> Iterator[Metric]:
    by_status = dict(WebhookLog.objects.filter(status__in=UNFINISHED).order_by()
                     .values_list("status").annotate(n=Count("pk")))
    statuses = GaugeMetricFamily("qualifica_webhook_deliveries_by_status",
                                 "Deliveries not processed yet (or never: dead), by status.",
                                 labels=["status"])
    for status in UNFINISHED:
        statuses.add_metric([str(status)], by_status.get(status, 0))
    yield statuses
    backlog = WebhookLog.objects.backlog().order_by().aggregate(n=Count("pk"),
                                                                oldest=Min("received_at"))
    yield GaugeMetricFamily("qualifica_webhook_backlog",
                            "Deliveries still to be processed (received, processing, failed).",
                            value=backlog["n"])
    age = (timezone.now() - backlog["oldest"]).total_seconds() if backlog["oldest"] else 0
    yield GaugeMetricFamily("qualifica_webhook_backlog_oldest_seconds",
                            "Age of the oldest delivery in the backlog (0 when empty).",
                            value=max(age, 0))


def _inbox() -> Iterator[Metric]:
    family = GaugeMetricFamily("qualifica_webhook_inbox_length",
                               "Delivery ids waiting in the Redis inbox for a drainer, by lane.",
                               labels=["lane"])
    for lane in LANES:
        family.add_metric([lane], inbox.waiting(lane) if inbox.enabled() else 0)
    yield family


def _grouped(model, labels: list[str], name: str, documentation: str) -> Metric:
    counts = dict(model.objects.order_by().values_list("status").annotate(n=Count("pk")))
    family = GaugeMetricFamily(name, documentation, labels=["status"])
    for status in labels:
        family.add_metric([status], counts.pop(status, 0))
    for status, n in counts.items():  # a value the choices no longer list
        family.add_metric([str(status)], n)
    return family


def _connections() -> Iterator[Metric]:
    yield _grouped(Connection, [str(s) for s in Connection.Status],
                   "qualifica_whatsapp_connections",
                   "Connections by pipeline state (connecting, awaiting_phone_selection, …).")


def _sends() -> Iterator[Metric]:
    yield _grouped(OutboundMessage, [str(s) for s in OutboundMessage.Status],
                   "qualifica_whatsapp_sends", "Outbound messages by status.")


def _alerts() -> Iterator[Metric]:
    """One series per alert name (`token_expiring_7d:<waba>` counts under
    `token_expiring_7d`: no ids in labels): how many of its conditions fire now."""
    firing: dict[str, int] = {}
    for key, active in AlertState.objects.values_list("key", "active"):
        name = key.split(":", 1)[0]
        firing[name] = firing.get(name, 0) + int(active)
    family = GaugeMetricFamily("qualifica_alerts_firing", "Alert conditions firing, by alert.",
                               labels=["alert"])
    for name in sorted(firing):
        family.add_metric([name], firing[name])
    yield family


def exposition() -> bytes:
    registry = CollectorRegistry()
    if prometheus.directory():
        MultiProcessCollector(registry, path=prometheus.directory())
    registry.register(StateCollector())
    text = generate_latest(registry)
    if not prometheus.directory():
        text = generate_latest(REGISTRY) + text  # this process only (development)
    return text


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        # 404: metrics are off; the endpoint does not exist for anyone.
        return HttpResponse("Not found", status=404, content_type="text/plain")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        # 401: no credentials; tell the client which scheme to use.
        return HttpResponse("Unauthorized", status=401, content_type="text/plain",
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        # 403: credentials given but wrong (never echoed, never logged).
        return HttpResponse("Forbidden", status=403, content_type="text/plain")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE)
