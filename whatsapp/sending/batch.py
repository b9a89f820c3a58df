"""The batch sender: one number's due sends, many at a time (issue 17, item 4).

`outbound_queue` announces the number (queue.outbound_announce), not each send: one task
`send_outbound_number` drains it. A drain claims the number's due sends in batches (one
statement, `SKIP LOCKED`, at most as many as the pacer has free slots), reads the mode and
the policy once per batch and checks each send's rules against them, then goes in rounds of
WHATSAPP_SEND_CONCURRENCY sends: the round's slots in one Redis call (pacing.slots_take: the
same atomic sliding window, so no process or host ever brings a second above the number's
limit), its Graph calls at once over kept-alive sessions, its results recorded set-based (one
UPDATE for the accepted, one INSERT for their audit events, one insert of their conversation
messages under the number's row lock).

A drain never sleeps: when the number's window is full it ends, and the next drain of the
number is published for when a slot frees, so the worker process goes on with other numbers'
sends meanwhile (and a drain that ran for WHATSAPP_SEND_DRAIN_SECONDS hands over the same way).
A send whose recipient's pair window is closed, a pair-rate 131056 and a transient error
go back to the one-send path (worker.outbound_send, task `send_outbound`) with their own
countdown; a refused or failed send finishes alone and never fails the others of its batch.
"""

import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import requests
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from whatsapp.conversations.messages import apply_stored_statuses
from whatsapp.core.graph import GraphClient, GraphError
from whatsapp.models import Message, OutboundEvent, OutboundMessage, PhoneNumber

from . import pacing
from .queue import announce_clear, outbound_enqueue
from .rules import mode_for, policy_for
from .worker import LEASE, S, _finish, _gate, _graph_failed, _user_id_record, _wamid

logger = logging.getLogger(__name__)


@dataclass
class Drained:
    sent: int = 0
    # Seconds until this number's next drain must run (None: nothing left that is due).
    again_in: float | None = None


def outbound_drain(config_id) -> Drained:
    """Sends the number's due sends until none is due, its window is full, or the drain has
    had its turn; says when the next drain must run."""
    config = (PhoneNumber.objects.select_related("connection", "organization")
              .filter(pk=config_id).first())
    drained = Drained()
    if config is None:
        return drained
    # From here on a new send announces the number again (this drain may not see it).
    announce_clear(config.pk)
    limit = pacing.limit_for(config)
    deadline = time.monotonic() + settings.WHATSAPP_SEND_DRAIN_SECONDS
    while True:
        free, wait = pacing.slots_free(config.phone_number_id, limit)
        if free <= 0:
            if _due(config.pk, timezone.now()).exists():
                drained.again_in = wait
            return drained
        messages = outbound_claim_batch(config, min(free, settings.WHATSAPP_SEND_BATCH))
        if not messages:
            return drained
        wait = _send(config, messages, drained)
        if wait is not None:
            drained.again_in = wait
            return drained
        if time.monotonic() > deadline:
            drained.again_in = 0.0  # behind the other numbers' drains already queued
            return drained


def _due(config_id, now: datetime):
    return OutboundMessage.objects.filter(config_id=config_id).filter(
        Q(status=S.QUEUED, next_attempt_at__isnull=True)
        | Q(status=S.QUEUED, next_attempt_at__lte=now)
        | Q(status=S.SENDING, locked_until__lte=now))


def outbound_claim_batch(config: PhoneNumber, size: int) -> list[OutboundMessage]:
    """Claims up to `size` due sends of the number, oldest first (rows another worker is
    claiming are skipped, never waited for); the same conditions as worker.outbound_claim."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(_due(config.pk, now).order_by("created_at")
                   .select_for_update(skip_locked=True).values_list("pk", flat=True)[:size])
        if not ids:
            return []
        OutboundMessage.objects.filter(pk__in=ids).update(
            status=S.SENDING, locked_until=now + LEASE, attempts=F("attempts") + 1)
    messages = list(OutboundMessage.objects.select_related("contact", "template")
                    .filter(pk__in=ids).order_by("created_at"))
    for message in messages:
        message.config, message.organization = config, config.organization
    return messages


def _send(config: PhoneNumber, messages: list[OutboundMessage], drained: Drained
          ) -> float | None:
    """One claimed batch: rules, then slots and Graph calls one round of
    WHATSAPP_SEND_CONCURRENCY at a time, each round's results recorded as it ends. Returns the
    wait when the number's window was full for some of them (queued again), else None.

    A round's slots are taken right before its calls go out together, so a call reaches Meta
    about when the pacer counted it whatever Graph's latency (the window's margin covers the
    rest); the batch's later rounds never hold slots while earlier calls are in flight."""
    policy = policy_for(config.organization)
    mode = mode_for(config.organization, policy)
    ready = [m for m in messages if _gate(m, mode=mode, policy=policy) is None]
    token = config.connection.get_access_token() if ready else ""
    step = max(1, settings.WHATSAPP_SEND_CONCURRENCY)
    busy: list[OutboundMessage] = []
    number_wait = None
    for first in range(0, len(ready), step):
        round_ = ready[first:first + step]
        if number_wait is not None:
            busy += round_
            continue
        granted, round_wait = _slots(config, round_, busy)
        number_wait = round_wait
        if granted:
            _call_graph(config, token, granted, drained)
    if busy:
        _requeue(busy, timezone.now() + timedelta(seconds=number_wait))
    return number_wait


def _slots(config: PhoneNumber, messages: list[OutboundMessage], busy: list
           ) -> tuple[list[OutboundMessage], float | None]:
    """Takes the round's slots in one Redis call: (granted sends, wait when the number's
    window was full). A send held by its number goes to `busy`; one held by its recipient's
    pair window back to the queue on its own, as the one-send path does."""
    slots = pacing.slots_take(config.phone_number_id, pacing.limit_for(config),
                              [m.to for m in messages])
    granted, number_wait = [], None
    for message, (at, wait, why) in zip(messages, slots, strict=True):
        if at is not None:
            granted.append(message)
            message.graph_called_at = at
        elif why == pacing.RECIPIENT:
            _requeue([message], timezone.now() + timedelta(seconds=wait))
            outbound_enqueue(message.pk, countdown=wait)
        else:
            busy.append(message)
            number_wait = wait if number_wait is None else min(number_wait, wait)
    return granted, number_wait


def _requeue(messages: list[OutboundMessage], due: datetime) -> None:
    """Back to the queue without using up an attempt (the pacer held them back)."""
    OutboundMessage.objects.filter(pk__in=[m.pk for m in messages], status=S.SENDING).update(
        status=S.QUEUED, locked_until=None, attempts=F("attempts") - 1, next_attempt_at=due)


def _call_graph(config: PhoneNumber, token: str, granted: list[OutboundMessage],
                drained: Drained) -> None:
    # One grant, one instant for the whole round (pacing.slots_take).
    OutboundMessage.objects.filter(pk__in=[m.pk for m in granted]).update(
        graph_called_at=granted[0].graph_called_at)
    if not token:
        for message in granted:
            _finish(message, S.FAILED, "failed", reason=_("The connection has no access token."),
                    failed_at=timezone.now())
        return
    results = _post_all(config.phone_number_id, token, granted)
    accepted = []
    for message, result in zip(granted, results, strict=True):
        if isinstance(result, GraphError):
            try:
                outcome = _graph_failed(message, result)
            except Exception:
                # Its lease runs out and the sweeper takes it again; the others go on.
                logger.exception("Recording the failure of send %s failed", message.pk)
                continue
            if outcome.retry_in is not None:
                outbound_enqueue(message.pk, countdown=max(0.05, outcome.retry_in))
        else:
            accepted.append((message, result))
    if accepted:
        _accepted_record(config, accepted)
        drained.sent += len(accepted)


def _accepted_record(config: PhoneNumber, accepted: list[tuple[OutboundMessage, dict]]) -> None:
    now = timezone.now()
    for message, body in accepted:
        message.wamid = _wamid(body) or None
        message.response, message.accepted_at, message.locked_until = body, now, None
    messages = [m for m, _body in accepted]
    with transaction.atomic():
        _accepted_update(messages, now)
        OutboundEvent.objects.bulk_create([
            OutboundEvent(message=m, event="accepted",
                          detail={"wamid": m.wamid or "", "attempt": m.attempts})
            for m in messages])
    sent = [m for m in messages if m.wamid]
    if sent:
        _conversation_record(config, sent, now)
    for message, body in accepted:
        try:
            _user_id_record(message, body, now)
        except Exception:
            logger.exception("Recording the BSUID Meta answered for send %s failed", message.pk)


ACCEPTED_SQL = f"""
UPDATE {OutboundMessage._meta.db_table} AS o
   SET wamid = NULLIF(v.wamid, ''), response = v.response::jsonb, accepted_at = %s,
       locked_until = NULL,
       status = CASE WHEN o.status = %s THEN %s ELSE o.status END
  FROM unnest(%s::uuid[], %s::text[], %s::text[]) AS v(id, wamid, response)
 WHERE o.id = v.id
"""


def _accepted_update(messages: list[OutboundMessage], now) -> None:
    """Meta's answers, in one statement. Statuses may have beaten us here (they carry our
    callback data): the status only moves from sending to accepted, never back."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(ACCEPTED_SQL, [
                now, S.SENDING, S.ACCEPTED, [m.pk for m in messages],
                [m.wamid or "" for m in messages],
                [json.dumps(m.response, cls=DjangoJSONEncoder) for m in messages]])
        return
    OutboundMessage.objects.bulk_update(
        messages, ["wamid", "response", "accepted_at", "locked_until"])
    OutboundMessage.objects.filter(pk__in=[m.pk for m in messages],
                                   status=S.SENDING).update(status=S.ACCEPTED)


def _conversation_record(config: PhoneNumber, messages: list[OutboundMessage], now) -> None:
    """The batch's sends as conversation messages, under the number's row lock (as
    worker._conversation_record, for many at once)."""
    with transaction.atomic():
        PhoneNumber.objects.select_for_update().filter(pk=config.pk).first()
        Message.objects.bulk_create([Message(
            organization=config.organization, config=config, contact=m.contact, wamid=m.wamid,
            direction=Message.Direction.OUTBOUND, source=Message.Source.CLOUD_API, type=m.kind,
            timestamp=now, raw=m.payload or {}, body=m.text or m.template_name,
        ) for m in messages], ignore_conflicts=True)
        apply_stored_statuses([m.wamid for m in messages])


# --- Graph, concurrently ------------------------------------------------------------------------

_local = threading.local()


@lru_cache(maxsize=1)
def _executor(pid: int) -> ThreadPoolExecutor:
    """The process's pool of Graph callers (one per process: a forked child makes its own)."""
    return ThreadPoolExecutor(max_workers=settings.WHATSAPP_SEND_CONCURRENCY,
                              thread_name_prefix="graph-send")


def _session() -> requests.Session:
    """A kept-alive HTTP session per calling thread (requests.Session is not thread-safe).

    Every call goes to Graph: the environment's proxy and CA bundle for it are read once here
    instead of on every request (requests scans the whole environment per call when
    `trust_env` is on: a fifth of a send's CPU in the profile)."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        session.proxies = requests.utils.get_environ_proxies(settings.META_GRAPH_API_URL)
        session.verify = (os.environ.get("REQUESTS_CA_BUNDLE")
                          or os.environ.get("CURL_CA_BUNDLE") or True)
        session.trust_env = False
    return session


def _post(phone_number_id: str, token: str, payload: dict) -> dict | GraphError:
    try:
        return GraphClient(token, session=_session()).send_message(phone_number_id, payload)
    except GraphError as exc:
        return exc
    except Exception as exc:
        # Not a Graph answer: whether Meta saw the call is unknown (never retried blindly).
        logger.exception("Graph call of a batch failed unexpectedly")
        return GraphError(status=0, code=None, message=type(exc).__name__)


def _post_all(phone_number_id: str, token: str, messages: list[OutboundMessage]
              ) -> list[dict | GraphError]:
    if len(messages) == 1 or settings.WHATSAPP_SEND_CONCURRENCY <= 1:
        return [_post(phone_number_id, token, m.payload) for m in messages]
    return list(_executor(os.getpid()).map(
        lambda m: _post(phone_number_id, token, m.payload), messages))
