"""Processing one stored delivery: claim the row, dispatch every change in one transaction,
then mark it processed, parked, failed (with a backoff) or dead. Safe to run twice."""

import json
import logging
import traceback
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import DataError, connection, transaction
from django.utils import timezone

from whatsapp.conversations.routing import Parked
from whatsapp.core import metrics
from whatsapp.core.backoff import backoff
from whatsapp.core.payloads import Delivery, PayloadError, parse_delivery, phone_number_ids
from whatsapp.core.unionfind import UnionFind
from whatsapp.models import WebhookLog

from .dispatch import BATCHED_FIELDS, Context, NumbersBusy, batchable, dispatch, dispatch_batch
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

    The live `messages`/`smb_message_echoes` deliveries are claimed in one statement, then
    applied per group of deliveries that share a number (in practice: per tenant), each group
    in one transaction (`dispatch.dispatch_batch`) finished with one fenced UPDATE. Groups
    are taken smallest first (a tenant's single message is not held behind another's burst),
    and a group whose numbers another drainer holds is put after the others instead of
    waiting on it (`NOWAIT`), so two drainers whose batches span the same numbers work side by
    side instead of in turn. If a group's pass fails for any reason (a poisoned delivery, a
    lost lease, a deadlock), it is rolled back and each of its deliveries is processed alone:
    a bad delivery fails by itself. Their ids are taken off `log_ids`; what is left (history,
    account updates, a single live delivery) is for `webhook_process`, one by one.
    """
    together = _batchable(log_ids)
    if not together:
        return []
    started = {log.pk for log, _ in together}
    log_ids[:] = [i for i in log_ids if i not in started]
    results: list[tuple[int, str]] = []
    deferred = []
    for group in _groups(together):
        done = _process_group(group, wait=False)
        if done is None:
            deferred.append(group)  # another drainer holds one of its numbers: later
        else:
            results += done
    for group in deferred:
        results += _process_group(group, wait=True)
    return results


_CLAIM = None


def _claim_statement() -> str:
    """Claims the batch's rows whose stored fields are all live messages (`claim_ids`' rules),
    returning what processing needs: one statement, bodies read once."""
    global _CLAIM
    if _CLAIM is None:
        S = WebhookLog.Status
        _CLAIM = (
            f"UPDATE {WebhookLog._meta.db_table} SET status = %s, locked_until = %s, "
            "attempts = attempts + 1 WHERE id = ANY(%s) AND (status IN "
            f"('{S.RECEIVED}', '{S.FAILED}') OR (status = '{S.PROCESSING}' AND "
            "locked_until <= %s AND attempts < %s)) "
            f"AND fields <@ '{json.dumps(list(BATCHED_FIELDS))}'::jsonb AND fields <> '[]' "
            f"AND octet_length(raw_body) <= {BATCH_BODY_MAX} "
            "RETURNING id, raw_body, received_at, locked_until, attempts")
    return _CLAIM


def _batchable(log_ids: list[int]) -> list[tuple[WebhookLog, Delivery | None]]:
    """The batch's live deliveries, claimed in one statement, with their parsed bodies (None
    for one that does not parse or turns out not to be batchable: processed alone)."""
    if len(log_ids) < 2 or connection.vendor != "postgresql":
        return []
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_claim_statement(), [
            WebhookLog.Status.PROCESSING, now + lease(), sorted(log_ids), now,
            settings.WHATSAPP_WEBHOOK_MAX_ATTEMPTS])
        rows = cursor.fetchall()
    together = []
    for pk, body, received_at, locked_until, attempts in sorted(rows):
        log = WebhookLog(pk=pk, raw_body=body, received_at=received_at,
                         locked_until=locked_until, attempts=attempts,
                         status=WebhookLog.Status.PROCESSING)
        try:
            delivery = parse_delivery(bytes(body))
        except Exception:
            delivery = None  # processed alone, where the error is recorded
        if delivery is not None and not batchable(delivery):
            delivery = None
        log.fields = delivery.fields if delivery else []
        together.append((log, delivery))
    return together


def _groups(items: list[tuple[WebhookLog, Delivery | None]]) -> list[list]:
    """The claimed deliveries in groups that share no number (union of the numbers each
    names), smallest group first; a delivery that is processed alone is a group by itself."""
    sets = UnionFind()
    keys = []
    for log, delivery in items:
        ids = phone_number_ids(delivery.changes) if delivery else []
        keys.append(sets.join(ids or [f"#{log.pk}"]))
    groups: dict[str, list] = {}
    for item, key in zip(items, keys, strict=True):
        groups.setdefault(sets.find(key), []).append(item)
    return sorted(groups.values(), key=len)


def _process_group(items: list[tuple[WebhookLog, Delivery | None]], *, wait: bool
                   ) -> list[tuple[int, str]] | None:
    """[(log id, status)] of one group; None when `wait` is off and another drainer holds one
    of its numbers (nothing done)."""
    if len(items) == 1 and items[0][1] is None:
        return [(items[0][0].pk, process_claimed(items[0][0]))]
    done: dict[int, str] = {}
    try:
        done = _apply_group(items, wait=wait)
    except NumbersBusy:
        return None
    except Exception:
        logger.warning("Batch of %s deliveries failed as a whole; processing them one by one",
                       len(items), exc_info=True)
        done = {}
    results = list(done.items())
    for log, _ in items:
        if log.pk not in done:
            # Not finished together: alone, on the claim it already holds.
            results.append((log.pk, process_claimed(log)))
    return results


def _apply_group(items: list[tuple[WebhookLog, Delivery | None]], *, wait: bool
                 ) -> dict[int, str]:
    """{log id: processed} for the deliveries applied together, in one transaction."""
    items = [(log, delivery) for log, delivery in items if delivery is not None]
    with transaction.atomic():
        applied, _ = dispatch_batch([delivery for _, delivery in items], wait=wait)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, organization_id in applied.items():
            log = items[i][0]
            groups[(tuple(log.fields), organization_id, log.locked_until)].append(log.pk)
        now = timezone.now()
        with connection.cursor() as cursor:
            for (fields, organization_id, locked_until), pks in groups.items():
                cursor.execute(_FINISH, [now, json.dumps(list(fields)), organization_id, pks,
                                         locked_until])
                if cursor.rowcount != len(pks):
                    raise LeaseLost()
    done = {}
    for i in sorted(applied):
        log = items[i][0]
        metrics.delivery_outcome(WebhookLog.Status.PROCESSED, log.fields, log.received_at)
        done[log.pk] = WebhookLog.Status.PROCESSED
    return done


# The fenced finish of the deliveries applied together (`WebhookLog.mark_processed`'s columns).
_FINISH = (f"UPDATE {WebhookLog._meta.db_table} SET status = '{WebhookLog.Status.PROCESSED}', "
           "processed_at = %s, fields = %s::jsonb, organization_id = %s, locked_until = NULL, "
           "next_attempt_at = NULL, last_error = '', traceback = '' "
           f"WHERE id = ANY(%s) AND status = '{WebhookLog.Status.PROCESSING}' "
           "AND locked_until = %s")
