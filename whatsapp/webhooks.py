"""Receiving (store before acknowledging) and processing (idempotent, retried) deliveries."""

import hashlib
import json
import logging
import random
import traceback
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from .handlers import Context, dispatch
from .models import WebhookLog
from .payloads import PayloadError, parse_delivery

logger = logging.getLogger(__name__)

# How long one processing attempt may hold a row before the sweeper may take it back; above
# the task's hard time limit so a slow but live attempt is never processed twice.
LEASE = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
KEPT_HEADERS = ("Content-Type", "User-Agent", "X-Hub-Signature-256", "X-Forwarded-For")


def webhook_store(*, body: bytes, headers) -> WebhookLog:
    return WebhookLog.objects.create(
        raw_body=body,
        body_sha256=hashlib.sha256(body).hexdigest(),
        headers={name: headers[name] for name in KEPT_HEADERS if name in headers},
        signature_valid=True,
    )


def webhook_enqueue(log_id: int) -> None:
    """Publishes the processing task; a broker outage only delays it (the sweeper retries)."""
    from .tasks import process_webhook

    try:
        process_webhook.delay(log_id)
    except Exception:
        logger.warning("Could not enqueue webhook %s; the sweeper will pick it up", log_id)


def count_invalid_signature(remote_addr: str) -> None:
    key = f"whatsapp:webhook:invalid_signature:{timezone.now():%Y%m%d}"
    try:
        cache.add(key, 0, timeout=7 * 86400)
        cache.incr(key)
    except Exception:
        pass
    logger.warning("Webhook with missing or invalid signature from %s rejected", remote_addr)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff with full jitter: ~30 s, 1 min, 2 min … capped at 30 min (below the broker visibility timeout)."""
    ceiling = min(1800, 30 * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def webhook_process(log_id: int) -> str:
    """Processes one stored delivery; returns its resulting status. Safe to call twice."""
    log = WebhookLog.objects.filter(pk=log_id).first()
    if log is None or not log.claim(lease=LEASE):
        return "skipped"
    try:
        delivery = parse_delivery(bytes(log.raw_body))
        ctx = Context(payload=json.loads(bytes(log.raw_body)))
        with transaction.atomic():
            for change in delivery.changes:
                dispatch(change, ctx)
            WebhookLog.objects.filter(pk=log.pk).update(
                status=WebhookLog.Status.PROCESSED,
                processed_at=timezone.now(),
                fields=delivery.fields,
                organization_id=ctx.organization_id,
                locked_until=None,
                next_attempt_at=None,
                last_error="",
                traceback="",
            )
        return WebhookLog.Status.PROCESSED
    except PayloadError as exc:
        # A signed body we cannot read will not improve with retries.
        return _fail(log, exc, dead=True)
    except Exception as exc:
        logger.exception("Webhook %s failed (attempt %s)", log.pk, log.attempts)
        return _fail(log, exc, dead=log.attempts >= settings.WHATSAPP_WEBHOOK_MAX_ATTEMPTS)


def _fail(log: WebhookLog, exc: Exception, *, dead: bool) -> str:
    status = WebhookLog.Status.DEAD if dead else WebhookLog.Status.FAILED
    WebhookLog.objects.filter(pk=log.pk).update(
        status=status,
        last_error=f"{type(exc).__name__}: {exc}"[:2000],
        traceback=traceback.format_exc()[-20000:],
        next_attempt_at=None if dead else timezone.now() + retry_delay(log.attempts),
        locked_until=None,
    )
    return status


def webhooks_sweep(*, limit: int = 500) -> int:
    """Re-enqueues deliveries that were stored but not processed (broker down, worker died)."""
    ids = list(WebhookLog.objects.due().order_by("received_at").values_list("pk", flat=True)[:limit])
    for log_id in ids:
        webhook_enqueue(log_id)
    return len(ids)
