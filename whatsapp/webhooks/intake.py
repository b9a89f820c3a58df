"""Intake: store a signed delivery byte for byte, then announce it to the workers.

The view verifies, calls `webhook_store` inside its transaction and `webhook_announce` after
the commit; a delivery whose announcement is lost is found again by `webhooks_sweep`. The
delivery's change fields (a byte scan, `whatsapp.core.lanes`) are stored with it and choose
its lane, live or bulk: its inbox here, its queue in the sweeper."""

import hashlib
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections, router
from django.utils import timezone

from config import ratelimit
from whatsapp.core import jobs, lanes, sqlbatch
from whatsapp.models import WebhookLog

from . import inbox

logger = logging.getLogger(__name__)


KEPT_HEADERS = ("Content-Type", "User-Agent", "X-Hub-Signature-256", "X-Forwarded-For")
# The same headers as WSGI environ keys (reading these four is cheaper than building
# `request.headers` from the whole environ on every delivery).
_KEPT_META = tuple(("CONTENT_TYPE" if name == "Content-Type" else
                    "HTTP_" + name.upper().replace("-", "_"), name) for name in KEPT_HEADERS)


def kept_headers(meta) -> dict[str, str]:
    """The headers stored with a delivery, read from the request's `META`."""
    return {name: meta[key] for key, name in _KEPT_META if key in meta}


def webhook_store(*, body: bytes, headers, fields: list[str] | None = None) -> int:
    """Stores one signed delivery as received; returns its id. Raises DatabaseError if it can't.

    One INSERT with precompiled SQL rather than `objects.create()`: this runs for every
    delivery inside the request Meta waits on, and the ORM's model, signals and compiler cost
    more CPU than the INSERT itself (bench/webcpu.py). It sends only the columns that vary;
    the processing columns take their database defaults (db_default on the model). Values go
    through each field's own `get_db_prep_save`, so they are stored as the ORM would.
    `fields` (the change fields, scanned from `body` when not given) are stored at once: the
    sweeper finds a row's lane by them; processing writes the parsed ones.
    """
    if fields is None:
        fields = lanes.fields_in(body)
    connection = connections[router.db_for_write(WebhookLog)]
    sql, columns = _insert_statement(connection)
    values = (timezone.now(), body, hashlib.sha256(body).hexdigest(),
              {name: headers[name] for name in KEPT_HEADERS if name in headers}, True, fields)
    params = [column.get_db_prep_save(value, connection)
              for column, value in zip(columns, values, strict=True)]
    # On PostgreSQL the parameters travel apart from the SQL (the body as binary bytea):
    # Django's cursor would quote the body into the statement's text, which for a 3 MB
    # history chunk costs ~40 ms of the request's CPU and ~65 ms of PostgreSQL's parsing it.
    bound = connection.vendor == "postgresql" and connection.alias == DEFAULT_DB_ALIAS
    # Outside a transaction, the connection's health check (CONN_HEALTH_CHECKS: a `SELECT 1`
    # round trip before each request's first statement, a third of this request's database
    # time) is skipped: the INSERT itself finds a dead connection, and goes once more on a
    # new one. Inside one (tests, ATOMIC_REQUESTS) a broken connection can't be resumed.
    again = connection.connection is not None and not connection.in_atomic_block
    if again:
        connection.health_check_done = True
    try:
        return _insert(connection, sql, params, bound=bound)
    except (InterfaceError, OperationalError):
        if not again or (connection.connection is not None and connection.is_usable()):
            raise  # the connection is alive: the statement failed (a lock or statement timeout)
        # Nothing stored, or (the connection dropped between the commit and its answer) a
        # second copy of the delivery: processing is idempotent, as for Meta's own retries.
        logger.warning("Database connection lost before storing a delivery; reconnecting")
        connection.close()
        return _insert(connection, sql, params, bound=bound)


def _insert(connection, sql: str, params: list, *, bound: bool) -> int:
    with sqlbatch.bound_cursor() if bound else connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


STORED_COLUMNS = ("received_at", "raw_body", "body_sha256", "headers", "signature_valid",
                  "fields")


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


def webhook_announce(log_id: int, *, body: bytes = b"", fields: list[str] | None = None
                     ) -> None:
    """After a delivery's INSERT commits: its lane's inbox when Redis is there (the tenant
    read from `body`), else a direct publish to its lane's queue."""
    global _publish_paused_until
    if fields is None:
        fields = lanes.fields_in(body)
    lane = lanes.lane_of(fields)
    if inbox.enabled() and inbox.announce(log_id, lane=lane, tenant=lanes.tenant_of(body)):
        return
    if time.monotonic() < _publish_paused_until:
        return  # stored as received: the sweeper enqueues it
    if not webhook_enqueue(log_id, fields=fields):
        _publish_paused_until = time.monotonic() + PUBLISH_PAUSE_SECONDS


def webhook_enqueue(log_id: int, *, fields=()) -> bool:
    """Publishes the processing task of the delivery's lane; a broker outage only delays it
    (the sweeper retries)."""
    return jobs.enqueue_quietly(lanes.process_task(fields), log_id)


def _invalid_signature_key(day) -> str:
    return f"whatsapp:webhook:invalid_signature:{day:%Y%m%d}"


def invalid_signatures_today(now=None) -> int:
    """Forged/unsigned requests counted today (UTC day of the cache key), for ops."""
    try:
        return int(cache.get(_invalid_signature_key(now or timezone.now())) or 0)
    except Exception:
        return 0


def count_invalid_signature(remote_addr: str) -> bool:
    """Counts a forged/unsigned request; True when this IP is over its invalid-traffic limit.

    Only ever called for requests that failed the HMAC check, so a valid Meta delivery can
    never be refused for rate reasons (SPEC §8.4). Redis down: counted nowhere, never blocked.
    """
    key = _invalid_signature_key(timezone.now())
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


def webhooks_sweep(*, limit: int = 500) -> int:
    """Re-enqueues deliveries that were stored but not processed (broker down, worker died),
    each as its lane's task on its lane's queue (`process_webhook`, `process_webhook_bulk`).

    A direct publish, not the inbox: a row whose worker died may have died with the lane's
    drainer slot, which stays taken until its TTL; a publish is processed at once.
    """
    stale = timedelta(seconds=settings.WHATSAPP_WEBHOOK_SWEEP_STALE_SECONDS)
    rows = list(WebhookLog.objects.due(stale_after=stale).order_by("received_at")
                .values_list("pk", "fields")[:limit])
    for log_id, fields in rows:
        webhook_enqueue(log_id, fields=fields)
    if inbox.enabled():
        inbox.wake()  # announced ids left waiting by a broker outage
    return len(rows)
