"""The webhook inbox: how a stored delivery reaches a worker without a Celery publish per request.

A Celery publish costs the web process more CPU than storing the delivery (WEBHOOK-RELIABILITY
§6.1; `bench/webcpu.py`). So, with Redis configured, the webhook view does one Redis call
after its INSERT commits (`announce`): LPUSH the row's id to a list and ring a doorbell
(`SET NX EX`). Only the request that finds the doorbell silent publishes a task,
`drain_webhook_inbox`; under load almost no request publishes anything.

A drainer pops ids in batches and processes each batch in-process (`process_batch`: claimed in
one conditional UPDATE, live messages and statuses applied together with set-based SQL, anything
else or anything that fails one delivery per transaction, exactly as the per-delivery task).
While a backlog remains it calls a helper into the next slot, up to
`WHATSAPP_WEBHOOK_DRAINERS` at once, and after `WHATSAPP_WEBHOOK_DRAIN_SECONDS` it hands over
to a fresh task so other tasks get a turn on the workers.

The list is only a hint. The database row is the truth: an id lost from the list (Redis
restarted, a worker killed after popping a batch) leaves its row `received`, and the sweeper
(`webhooks_sweep`, every 30 s) enqueues it and rings the doorbell. Redis unreachable in the
request: the view falls back to a direct Celery publish (`webhook_enqueue`), then to the sweeper.
Broker unreachable: the request that rang pays the publish retries (~0.3 s) and the slot stays
taken for STARTING_TTL, so the deliveries meanwhile are only pushed.
"""

import logging
import secrets
import time

from django.conf import settings

from config.cache import redis_client
from whatsapp.core import jobs

from .process import process_together, webhook_process

logger = logging.getLogger(__name__)

QUEUE = "whatsapp:webhooks:inbox"
SLOT = "whatsapp:webhooks:drainer:{}"
# A doorbell rung by a request lives this long unless its drainer starts and takes the slot:
# a drain task lost on the way (or a reply lost to a timeout) blocks slot 0 only briefly.
STARTING_TTL = 15

# LPUSH the id, then try to take drainer slot 0 for a new drainer: one round trip.
_ANNOUNCE = """
redis.call('LPUSH', KEYS[1], ARGV[1])
return redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[3])
"""
# Takes the slot when it is free or already ours (a handed-over or redelivered drainer) and
# renews it; 0 when another drainer holds it.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""
# Frees a slot only if it is still ours (it may have expired and been taken by a newer drainer).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_scripts: dict = {}


def enabled() -> bool:
    # In-process tasks (CELERY_TASK_ALWAYS_EAGER) would drain inside the request: no inbox.
    return settings.WHATSAPP_WEBHOOK_INBOX and not settings.CELERY_TASK_ALWAYS_EAGER


def _redis():
    return redis_client()


def _script(source: str):
    client = _redis()
    script = _scripts.get(source)
    if script is None or script.registered_client is not client:
        script = _scripts[source] = client.register_script(source)
    return script


def _slot_ttl() -> int:
    return settings.WHATSAPP_WEBHOOK_DRAINER_TTL_SECONDS


def announce(log_id: int) -> bool:
    """Signals a stored delivery (call after its INSERT commits). False: not signalled.

    On False the caller publishes the per-delivery task instead; the row is safe either way.
    """
    token = secrets.token_hex(8)
    try:
        rang = _script(_ANNOUNCE)(keys=[QUEUE, SLOT.format(0)],
                                  args=[log_id, token, STARTING_TTL])
    except Exception:
        logger.warning("Webhook inbox unavailable; delivery %s falls back to a direct publish",
                       log_id)
        _release(0, token)  # the call may have reached Redis before failing
        return False
    if rang:
        _start_drainer(0, token)
    return True


def wake() -> bool:
    """Starts a drainer if ids wait and no drainer holds slot 0 (the sweeper calls this)."""
    try:
        return bool(_redis().llen(QUEUE)) and _start_if_free(0)
    except Exception:
        logger.warning("Webhook inbox unavailable; the sweeper enqueues from the database")
        return False


def _start_drainer(slot: int, token: str) -> None:
    try:
        jobs.task("drain_webhook_inbox").delay(slot, token)
    except Exception:
        # No broker. The slot stays taken for STARTING_TTL: meanwhile deliveries are only
        # pushed (a publish attempt costs a request ~0.3 s of retries), then the next
        # delivery or the sweeper tries again.
        logger.warning("Could not start a webhook drainer; retrying in %s s", STARTING_TTL)
        try:
            _redis().expire(SLOT.format(slot), STARTING_TTL)
        except Exception:
            pass


def _hold(slot: int, token: str) -> bool:
    return bool(_script(_HOLD)(keys=[SLOT.format(slot)], args=[token, _slot_ttl()]))


def _release(slot: int, token: str) -> None:
    try:
        _script(_RELEASE)(keys=[SLOT.format(slot)], args=[token])
    except Exception:
        pass  # it expires by itself


def _start_if_free(slot: int) -> bool:
    """Takes `slot` for a new drainer and starts it; False when a drainer already holds it."""
    token = secrets.token_hex(8)
    if not _redis().set(SLOT.format(slot), token, nx=True, ex=STARTING_TTL):
        return False
    _start_drainer(slot, token)
    return True


def drain(slot: int, token: str, *, on_result=None) -> int:
    """Processes announced deliveries until the inbox is empty or the turn is over.

    Runs as the task holding drainer slot `slot` (proved by `token`); a drainer that finds its
    slot held by another token stops at once. Returns how many deliveries it processed.
    `on_result(log_id, status)` sees every outcome (the task schedules retries with it).
    Whatever happens, ids popped but not processed go back to the head of the inbox.
    """
    client = _redis()
    batch = settings.WHATSAPP_WEBHOOK_DRAIN_BATCH
    deadline = time.monotonic() + settings.WHATSAPP_WEBHOOK_DRAIN_SECONDS
    if not _hold(slot, token):
        return 0
    renewed = time.monotonic()
    processed, pending = 0, []
    finished = fresh = False
    try:
        while True:
            if not pending:
                pending = [int(raw) for raw in client.rpop(QUEUE, batch) or []]
                fresh = True
                if not pending:
                    _release(slot, token)
                    # A delivery announced between our empty pop and the release found the
                    # slot taken and started nobody: look again now that the slot is free.
                    if client.llen(QUEUE) and client.set(SLOT.format(slot), token, nx=True,
                                                         ex=_slot_ttl()):
                        continue
                    finished = True
                    return processed
                if slot + 1 < settings.WHATSAPP_WEBHOOK_DRAINERS and client.llen(QUEUE):
                    _start_if_free(slot + 1)  # a helper for the backlog
            if time.monotonic() >= deadline:
                # Turn over: a fresh task at the back of the Celery queue keeps the slot.
                _push_back(client, pending)
                pending = []
                if _hold(slot, token):
                    finished = True
                    _start_drainer(slot, token)
                return processed
            if time.monotonic() - renewed > _slot_ttl() / 3:
                if not _hold(slot, token):
                    return processed  # superseded (our slot expired and was taken)
                renewed = time.monotonic()
            if fresh:
                # The batch's live deliveries together (set-based; one that fails is then
                # processed alone); it takes their ids off `pending`, the rest go one by one.
                fresh = False
                outcomes = process_together(pending)
            else:
                log_id = pending.pop(0)
                outcomes = [(log_id, webhook_process(log_id))]
            for log_id, status in outcomes:
                processed += 1
                if on_result:
                    on_result(log_id, status)
    finally:
        _push_back(client, pending)
        if not finished:
            _release(slot, token)


def _push_back(client, ids: list[int]) -> None:
    """Returns popped ids to the end RPOP reads next, oldest first (never lost: the sweeper
    would find their rows anyway)."""
    if ids:
        try:
            client.rpush(QUEUE, *reversed(ids))
        except Exception:
            logger.warning("Could not return %s webhook ids to the inbox; the sweeper will "
                           "pick them up", len(ids))
