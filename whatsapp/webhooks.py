"""Receiving (store before acknowledging) and processing (idempotent, retried) deliveries."""

import hashlib
import logging
import time
import traceback
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connections, router, transaction
from django.utils import timezone

from whatsapp.core.backoff import backoff
from whatsapp.core.payloads import PayloadError, parse_delivery

from . import inbox
from .handlers import Context, dispatch
from .ingestion import Parked
from .models import WebhookLog

logger = logging.getLogger(__name__)

KEPT_HEADERS = ("Content-Type", "User-Agent", "X-Hub-Signature-256", "X-Forwarded-For")


def webhook_store(*, body: bytes, headers) -> int:
    """Stores one signed delivery as received; returns its id. Raises DatabaseError if it can't.

    One INSERT with precompiled SQL rather than `objects.create()`: this runs for every
    delivery inside the request Meta waits on, and the ORM's model, signals and compiler cost
    more CPU than the INSERT itself (bench/webcpu.py). It sends only the columns that vary;
    the processing columns take their database defaults (db_default on the model). Values go
    through each field's own `get_db_prep_save`, so they are stored as the ORM would.
    """
    connection = connections[router.db_for_write(WebhookLog)]
    sql, fields = _insert_statement(connection)
    values = (timezone.now(), body, hashlib.sha256(body).hexdigest(),
              {name: headers[name] for name in KEPT_HEADERS if name in headers}, True)
    params = [field.get_db_prep_save(value, connection)
              for field, value in zip(fields, values, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


STORED_COLUMNS = ("received_at", "raw_body", "body_sha256", "headers", "signature_valid")
_insert_statements: dict[str, tuple[str, list]] = {}


def _insert_statement(connection) -> tuple[str, list]:
    """The INSERT … RETURNING id of a received delivery, built once per database vendor."""
    statement = _insert_statements.get(connection.vendor)
    if statement is None:
        quote = connection.ops.quote_name
        fields = [WebhookLog._meta.get_field(name) for name in STORED_COLUMNS]
        sql = (f"INSERT INTO {quote(WebhookLog._meta.db_table)} "
               f"({', '.join(quote(f.column) for f in fields)}) "
               f"VALUES ({', '.join(['%s'] * len(fields))}) "
               f"RETURNING {quote(WebhookLog._meta.pk.column)}")
        statement = _insert_statements[connection.vendor] = (sql, fields)
    return statement


# After a failed publish, this process stops trying for a while: each attempt costs the
# request Meta waits on ~0.3 s of publish retries, and the stored row is found by the sweeper.
PUBLISH_PAUSE_SECONDS = 10.0
_publish_paused_until = 0.0


def webhook_announce(log_id: int) -> None:
    """After a delivery's INSERT commits: the inbox when Redis is there, else a direct publish."""
    global _publish_paused_until
    if inbox.enabled() and inbox.announce(log_id):
        return
    if time.monotonic() < _publish_paused_until:
        return  # stored as received: the sweeper enqueues it
    if not webhook_enqueue(log_id):
        _publish_paused_until = time.monotonic() + PUBLISH_PAUSE_SECONDS


def webhook_enqueue(log_id: int) -> bool:
    """Publishes the processing task; a broker outage only delays it (the sweeper retries)."""
    from .tasks import process_webhook

    try:
        process_webhook.delay(log_id)
    except Exception:
        logger.warning("Could not enqueue webhook %s; the sweeper will pick it up", log_id)
        return False
    return True


def count_invalid_signature(remote_addr: str) -> bool:
    """Counts a forged/unsigned request; True when this IP is over its invalid-traffic limit.

    Only ever called for requests that failed the HMAC check, so a valid Meta delivery can
    never be refused for rate reasons (SPEC §8.4). Redis down: counted nowhere, never blocked.
    """
    from config import ratelimit

    key = f"whatsapp:webhook:invalid_signature:{timezone.now():%Y%m%d}"
    try:
        cache.add(key, 0, timeout=7 * 86400)
        cache.incr(key)
    except Exception:
        pass
    logger.warning("Webhook with missing or invalid signature from %s rejected", remote_addr)
    return not ratelimit.hit(
        "webhook-invalid-signature", remote_addr or "unknown",
        limit=settings.RATELIMIT_WEBHOOK_INVALID_PER_MINUTE, window=60,
    ).allowed


class LeaseLost(Exception):
    """Our lease expired and another attempt took the row: our work must not be committed."""


def lease() -> timedelta:
    return timedelta(seconds=settings.WHATSAPP_WEBHOOK_LEASE_SECONDS)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff with jitter, capped under the broker visibility timeout."""
    return backoff(attempts, base=settings.WHATSAPP_WEBHOOK_RETRY_BASE_SECONDS,
                   cap=settings.WHATSAPP_WEBHOOK_RETRY_MAX_SECONDS)


def _bury_abandoned(log_id: int) -> bool:
    """Poison-pill cap: a row whose lease expired after its last allowed attempt is dead.

    Attempts are counted at claim time, so a payload that kills the worker (OOM, segfault,
    SIGKILL) still uses one up each time even though no error was ever recorded.
    """
    return bool(
        WebhookLog.objects.filter(
            pk=log_id, status=WebhookLog.Status.PROCESSING, locked_until__lte=timezone.now(),
            attempts__gte=settings.WHATSAPP_WEBHOOK_MAX_ATTEMPTS,
        ).update(
            status=WebhookLog.Status.DEAD, locked_until=None, next_attempt_at=None,
            last_error="Abandoned: the worker died or timed out on every attempt.",
        )
    )


def _owned(log: WebhookLog):
    """The row, only while it is still ours (fencing on the lease we were granted)."""
    return WebhookLog.objects.filter(pk=log.pk, status=WebhookLog.Status.PROCESSING,
                                     locked_until=log.locked_until)


def webhook_process(log_id: int) -> str:
    """Processes one stored delivery; returns its resulting status. Safe to call twice."""
    log = WebhookLog.claim_id(log_id, lease=lease())
    if log is None:
        # Finished, held by a live attempt, or abandoned after its last attempt: only the
        # last is work (one query, on this rare path only).
        if _bury_abandoned(log_id):
            logger.error("Webhook %s is dead: abandoned after the last attempt", log_id)
            return WebhookLog.Status.DEAD
        return "skipped"
    try:
        delivery = parse_delivery(bytes(log.raw_body))
        ctx = Context(delivery)
        with transaction.atomic():
            for change in delivery.changes:
                dispatch(change, ctx)
            updated = _owned(log).update(
                status=WebhookLog.Status.PROCESSED,
                processed_at=timezone.now(),
                fields=delivery.fields,
                organization_id=ctx.organization_id,
                locked_until=None,
                next_attempt_at=None,
                last_error="",
                traceback="",
            )
            if not updated:
                raise LeaseLost()
        return WebhookLog.Status.PROCESSED
    except LeaseLost:
        # A slow attempt outlived its lease; the newer attempt owns the row (ours rolled back).
        logger.warning("Webhook %s: lease lost, this attempt's work was rolled back", log.pk)
        return "skipped"
    except Parked as exc:
        # Its number is not configured yet (or owned by nobody): wait for webhooks_unpark.
        return _park(log, exc)
    except (PayloadError, RecursionError) as exc:
        # A signed body we cannot read (or nested too deep to parse) will not improve with
        # retries.
        return _fail(log, exc, dead=True)
    except Exception as exc:
        logger.exception("Webhook %s failed (attempt %s)", log.pk, log.attempts)
        return _fail(log, exc, dead=log.attempts >= settings.WHATSAPP_WEBHOOK_MAX_ATTEMPTS)


def _fail(log: WebhookLog, exc: Exception, *, dead: bool) -> str:
    status = WebhookLog.Status.DEAD if dead else WebhookLog.Status.FAILED
    if dead:
        logger.error("Webhook %s is dead after %s attempts: %s", log.pk, log.attempts,
                     type(exc).__name__)
    updated = _owned(log).update(
        status=status,
        last_error=f"{type(exc).__name__}: {exc}"[:2000],
        traceback=traceback.format_exc()[-20000:],
        next_attempt_at=None if dead else timezone.now() + retry_delay(log.attempts),
        locked_until=None,
    )
    return status if updated else "skipped"


def _park(log: WebhookLog, exc: Parked) -> str:
    logger.info("Webhook %s parked: %s", log.pk, exc.reason)
    updated = _owned(log).update(
        status=WebhookLog.Status.PARKED,
        parked_phone_number_id=exc.phone_number_id[:64],
        last_error=f"Parked: {exc.reason}"[:2000],
        traceback="",
        next_attempt_at=None,
        locked_until=None,
    )
    return WebhookLog.Status.PARKED if updated else "skipped"


def webhooks_unpark(*, phone_number_id: str) -> int:
    """Re-queues the deliveries parked for a number; call it when the number is configured.

    Parked rows re-enter as received (attempts reset: waiting is not failing) and are enqueued
    after the caller's transaction commits; the sweeper would also find them. Returns the count.
    """
    parked = WebhookLog.objects.filter(status=WebhookLog.Status.PARKED,
                                       parked_phone_number_id=phone_number_id)
    ids = list(parked.order_by("received_at", "id").values_list("pk", flat=True))
    count = WebhookLog.objects.filter(pk__in=ids, status=WebhookLog.Status.PARKED).update(
        status=WebhookLog.Status.RECEIVED, parked_phone_number_id="", attempts=0,
        last_error="", next_attempt_at=None,
    )
    transaction.on_commit(lambda: [webhook_enqueue(log_id) for log_id in ids])
    return count


def webhooks_sweep(*, limit: int = 500) -> int:
    """Re-enqueues deliveries that were stored but not processed (broker down, worker died)."""
    stale = timedelta(seconds=settings.WHATSAPP_WEBHOOK_SWEEP_STALE_SECONDS)
    ids = list(WebhookLog.objects.due(stale_after=stale).order_by("received_at")
               .values_list("pk", flat=True)[:limit])
    for log_id in ids:
        webhook_enqueue(log_id)
    if inbox.enabled():
        inbox.wake()  # announced ids left waiting by a broker outage
    return len(ids)
