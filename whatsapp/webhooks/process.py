"""Processing one stored delivery: claim the row, dispatch every change in one transaction,
then mark it processed, parked, failed (with a backoff) or dead. Safe to run twice."""

import logging
import traceback
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import DataError, transaction
from django.utils import timezone

from whatsapp.conversations.routing import Parked
from whatsapp.core import metrics
from whatsapp.core.backoff import backoff
from whatsapp.core.payloads import Delivery, PayloadError, parse_delivery
from whatsapp.models import WebhookLog

from .dispatch import Context, batchable, dispatch, dispatch_batch
from .lease import LeaseHeartbeat

logger = logging.getLogger(__name__)


# Errors another attempt cannot fix: a body we cannot read (PayloadError is a ValueError), data
# PostgreSQL refuses (DataError: too long, out of range, invalid text), invalid values, nesting
# too deep. The delivery is dead on its first attempt, with its error, for a replay after the fix.
# Everything else (OperationalError: connection, deadlock, lock or statement timeout;
# InterfaceError; an unknown bug) keeps the backoff.
PERMANENT_ERRORS = (ValueError, OverflowError, RecursionError, DataError)


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


def webhook_process(log_id: int) -> str:
    """Processes one stored delivery; returns its resulting status. Safe to call twice."""
    log = WebhookLog.claim_id(log_id, lease=lease())
    if log is None:
        return _not_claimed(log_id)
    return process_claimed(log)


def _not_claimed(log_id: int) -> str:
    # Finished, held by a live attempt, or abandoned after its last attempt: only the
    # last is work (one query, on this rare path only).
    if _bury_abandoned(log_id):
        logger.error("Webhook %s is dead: abandoned after the last attempt", log_id)
        metrics.delivery_outcome(WebhookLog.Status.DEAD, None)
        return WebhookLog.Status.DEAD
    return "skipped"


def process_claimed(log: WebhookLog) -> str:
    """Processes one delivery this attempt claimed, in its own transaction."""
    try:
        if log.raw_body is None:
            raise PayloadError("The raw body was purged (WHATSAPP_WEBHOOK_RETENTION_DAYS).")
        delivery = parse_delivery(bytes(log.raw_body))
        log.fields = delivery.fields  # the outcome's metric labels (core.metrics)
        ctx = Context(delivery)
        with transaction.atomic():
            # The lease is renewed while the changes run (a long history import outlives
            # many leases); stopped before the fenced mark_processed reads it.
            with LeaseHeartbeat(log, lease=lease()):
                for change in delivery.changes:
                    dispatch(change, ctx)
            if not log.mark_processed(fields=delivery.fields,
                                      organization_id=ctx.organization_id):
                raise LeaseLost()
        metrics.delivery_outcome(WebhookLog.Status.PROCESSED, log.fields, log.received_at)
        return WebhookLog.Status.PROCESSED
    except LeaseLost:
        # A slow attempt outlived its lease; the newer attempt owns the row (ours rolled back).
        logger.warning("Webhook %s: lease lost, this attempt's work was rolled back", log.pk)
        return "skipped"
    except Parked as exc:
        # Its number is not configured yet (or owned by nobody): wait for it to be.
        return _park(log, exc)
    except PERMANENT_ERRORS as exc:
        # Will not improve with retries: dead now, replayable after a fix.
        return _fail(log, exc, dead=True)
    except Exception as exc:
        logger.exception("Webhook %s failed (attempt %s)", log.pk, log.attempts)
        return _fail(log, exc, dead=log.attempts >= settings.WHATSAPP_WEBHOOK_MAX_ATTEMPTS)


def _fail(log: WebhookLog, exc: Exception, *, dead: bool) -> str:
    if dead:
        logger.error("Webhook %s is dead after %s attempts: %s", log.pk, log.attempts,
                     type(exc).__name__)
    updated = log.mark_failed(f"{type(exc).__name__}: {exc}", traceback.format_exc(),
                              dead=dead, retry_in=retry_delay(log.attempts))
    if not updated:
        return "skipped"
    metrics.delivery_outcome("dead" if dead else "failed", log.fields)
    return WebhookLog.Status.DEAD if dead else WebhookLog.Status.FAILED


def _park(log: WebhookLog, exc: Parked) -> str:
    logger.info("Webhook %s parked: %s", log.pk, exc.reason)
    if not log.park(exc.phone_number_id, exc.reason):
        return "skipped"
    metrics.delivery_outcome(WebhookLog.Status.PARKED, log.fields)
    return WebhookLog.Status.PARKED


# A body this large is a history chunk or a state sync: never batched, not even parsed here.
BATCH_BODY_MAX = 256 * 1024


def process_batch(log_ids: list[int]) -> list[tuple[int, str]]:
    """Processes a batch of stored deliveries; (log_id, resulting status) in processing order.

    Same outcomes as `webhook_process` on each id: the live ones together
    (`process_together`), then the others one by one.
    """
    log_ids = list(log_ids)
    results = process_together(log_ids)
    while log_ids:
        log_id = log_ids.pop(0)
        results.append((log_id, webhook_process(log_id)))
    return results


def process_together(log_ids: list[int]) -> list[tuple[int, str]]:
    """Processes the batch's live deliveries with set-based work; the drainer's entry point.

    The live `messages`/`smb_message_echoes` deliveries are claimed in one statement, applied
    together in one transaction (`dispatch.dispatch_batch`) and finished with one fenced
    UPDATE per (fields, organization). If that pass fails for any reason (a poisoned
    delivery, a lost lease, a deadlock), it is rolled back whole and each of its deliveries
    is processed alone: a bad delivery fails by itself, the others are processed in the same
    call. Their ids are taken off `log_ids`; what is left (history, account updates, a body
    that does not parse, a single live delivery) is for `webhook_process`, one by one.
    """
    together = _batchable(log_ids)
    if not together:
        return []
    started = {log.pk for log, _ in together}
    log_ids[:] = [i for i in log_ids if i not in started]
    done = _process_together(together)
    results = list(done.items())
    for log, _ in together:
        if log.pk not in done:
            # Not finished together: alone, on the claim it already holds.
            results.append((log.pk, process_claimed(log)))
    return results


def _batchable(log_ids: list[int]) -> list[tuple[WebhookLog, Delivery]]:
    """The batch's live deliveries, claimed in one statement, with their parsed bodies
    (nothing when fewer than two: one delivery goes the ordinary way)."""
    parsed: dict[int, Delivery] = {}
    for pk, body in WebhookLog.objects.filter(pk__in=log_ids).values_list("pk", "raw_body"):
        if body is None or len(body) > BATCH_BODY_MAX:
            continue
        try:
            delivery = parse_delivery(bytes(body))
        except Exception:
            continue  # processed alone, where the error is recorded
        if batchable(delivery):
            parsed[pk] = delivery
    if len(parsed) < 2:
        return []
    claimed = WebhookLog.claim_ids(sorted(parsed), lease=lease())
    together = []
    for pk, log in sorted(claimed.items()):
        log.fields = parsed[pk].fields
        together.append((log, parsed[pk]))
    return together


def _process_together(items: list[tuple[WebhookLog, Delivery]]) -> dict[int, str]:
    """{log id: processed} for the deliveries applied together; {} when the pass failed."""
    try:
        with transaction.atomic():
            applied, _ = dispatch_batch([delivery for _, delivery in items])
            groups: dict[tuple, list[WebhookLog]] = defaultdict(list)
            for i, organization_id in applied.items():
                log = items[i][0]
                groups[(tuple(log.fields), organization_id, log.locked_until)].append(log)
            for (fields, organization_id, locked_until), logs in groups.items():
                finished = WebhookLog.objects.filter(
                    pk__in=[log.pk for log in logs], status=WebhookLog.Status.PROCESSING,
                    locked_until=locked_until,
                ).update(status=WebhookLog.Status.PROCESSED, processed_at=timezone.now(),
                         fields=list(fields), organization_id=organization_id,
                         locked_until=None, next_attempt_at=None, last_error="", traceback="")
                if finished != len(logs):
                    raise LeaseLost()
    except Exception:
        logger.warning("Batch of %s deliveries failed as a whole; processing them one by one",
                       len(items), exc_info=True)
        return {}
    done = {}
    for i in sorted(applied):
        log = items[i][0]
        metrics.delivery_outcome(WebhookLog.Status.PROCESSED, log.fields, log.received_at)
        done[log.pk] = WebhookLog.Status.PROCESSED
    return done
