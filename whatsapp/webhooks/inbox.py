"""The webhook inbox: how a stored delivery reaches a worker without a Celery publish per request.

A Celery publish costs the web process more CPU than storing the delivery (WEBHOOK-RELIABILITY
§6.1; `bench/webcpu.py`). So, with Redis configured, the webhook view does one Redis call
after its INSERT commits (`announce`): LPUSH the row's id to its lane's inbox and ring the
lane's doorbell (`SET NX EX`). Only the request that finds the doorbell silent publishes a task,
the lane's drainer (`drain_webhook_inbox` for live, `drain_webhook_bulk` for bulk, each routed
to its own Celery queue); under load almost no request publishes anything.

Lanes (`whatsapp.core.lanes`): live and bulk deliveries wait in separate inboxes, drained by
separate tasks on separate queues, so a history import never holds a lead's message back.

Fairness inside a lane: the inbox is one list per tenant (the WABA id) plus a ring of the
tenants that have ids waiting. A drainer takes one id from the tenant at the head of the ring
and puts that tenant at the back while it still has ids, until its batch is full: one
tenant's 10,000 statuses or 20 history chunks get one turn per round like everyone else, and a
tenant that just wrote is served within the first round. Each tenant's ids leave in arrival
order. A tenant is in the ring exactly when its list is not empty (every change to both is
one Lua script). While a bulk drainer imports one of a tenant's deliveries, its number rows are
locked (conversations.routing serializes a number's ingestion); the live lane skips that
tenant meanwhile (`BUSY`) rather than have a live process wait on the lock while other
tenants' leads wait for the process, and the bulk drainer wakes the live lane when done.

A drainer pops ids in batches, round robin across tenants, and processes them in-process: a
live lane's batch first together (`process_together`: claimed in one conditional UPDATE, live
messages and statuses applied with set-based SQL), then anything else, or anything that failed
in the batch, one delivery per transaction (`webhook_process`), exactly as the per-delivery
task. While a backlog remains it calls a helper into the next slot, up to the lane's drainers
at once (`WHATSAPP_WEBHOOK_DRAINERS`, `WHATSAPP_WEBHOOK_BULK_DRAINERS`), and after
`WHATSAPP_WEBHOOK_DRAIN_SECONDS` it hands over to a fresh task so other tasks get a turn on the
workers.

The inbox is only a hint. The database row is the truth: an id lost from it (Redis restarted,
a worker killed after popping a batch) leaves its row `received`, and the sweeper
(`webhooks_sweep`, every 30 s) publishes its lane's task. Redis unreachable in the
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
from whatsapp.core.lanes import BULK, LANES, LIVE, NO_TENANT

from .process import process_together, webhook_process

logger = logging.getLogger(__name__)

PREFIX = "whatsapp:webhooks:inbox:{}"
RING = PREFIX + ":ring"
TENANT = PREFIX + ":tenant:"
SLOT = "whatsapp:webhooks:drainer:{}:{}"
# Set while a bulk drainer processes one of the tenant's deliveries: the tenant's number rows
# are locked by that import (conversations.routing), so a live drainer would only wait on
# them, holding a live process other tenants need. The live lane skips the tenant meanwhile.
BUSY = "whatsapp:webhooks:busy:"
DRAIN_TASK = {LIVE: "drain_webhook_inbox", BULK: "drain_webhook_bulk"}
# A doorbell rung by a request lives this long unless its drainer starts and takes the slot:
# a drain task lost on the way (or a reply lost to a timeout) blocks slot 0 only briefly.
STARTING_TTL = 15

# LPUSH the id to its tenant's list (joining the ring's back if the list was empty), then try
# to take drainer slot 0 for a new drainer: one round trip.
_ANNOUNCE = """
if redis.call('LPUSH', KEYS[2], ARGV[1]) == 1 then redis.call('LPUSH', KEYS[1], ARGV[4]) end
return redis.call('SET', KEYS[3], ARGV[2], 'NX', 'EX', ARGV[3])
"""
# Up to ARGV[2] ids, one per tenant per turn round the ring; returns tenant, id, tenant, id…
# A tenant whose busy key (prefix ARGV[3], '' for none) exists keeps its ids and its turn goes
# round; the loop ends when every tenant left in the ring was skipped in a row.
_TAKE = """
local taken, budget, skipped = {}, tonumber(ARGV[2]), 0
while budget > 0 do
  local tenant = redis.call('RPOP', KEYS[1])
  if not tenant then break end
  if ARGV[3] ~= '' and redis.call('EXISTS', ARGV[3] .. tenant) == 1 then
    redis.call('LPUSH', KEYS[1], tenant)
    skipped = skipped + 1
    if skipped >= redis.call('LLEN', KEYS[1]) then break end
  else
    skipped = 0
    local id = redis.call('RPOP', ARGV[1] .. tenant)
    if id then
      taken[#taken + 1] = tenant
      taken[#taken + 1] = id
      budget = budget - 1
    end
    if redis.call('LLEN', ARGV[1] .. tenant) > 0 then redis.call('LPUSH', KEYS[1], tenant) end
  end
end
return taken
"""
# 1 when some tenant in the ring is not busy (has ids a drainer may take now).
_READY = """
for _, tenant in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if ARGV[1] == '' or redis.call('EXISTS', ARGV[1] .. tenant) == 0 then return 1 end
end
return 0
"""
# Returns ids (ARGV: prefix, then tenant, id pairs oldest first) to the end their lists are
# read from, and their tenants to the head of the ring in the order they were taken: the
# interrupted turn resumes where it stopped.
_PUT_BACK = """
for i = #ARGV - 1, 2, -2 do redis.call('RPUSH', ARGV[1] .. ARGV[i], ARGV[i + 1]) end
local seen, order = {}, {}
for i = 2, #ARGV, 2 do
  if not seen[ARGV[i]] then seen[ARGV[i]] = true; order[#order + 1] = ARGV[i] end
end
for j = #order, 1, -1 do
  redis.call('LREM', KEYS[1], 0, order[j])
  redis.call('RPUSH', KEYS[1], order[j])
end
return 1
"""
# Ids waiting in a lane: the lengths of the ring's tenants' lists.
_WAITING = """
local n = 0
for _, tenant in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  n = n + redis.call('LLEN', ARGV[1] .. tenant)
end
return n
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


def _drainers(lane: str) -> int:
    return (settings.WHATSAPP_WEBHOOK_BULK_DRAINERS if lane == BULK
            else settings.WHATSAPP_WEBHOOK_DRAINERS)


def _batch(lane: str) -> int:
    return (settings.WHATSAPP_WEBHOOK_BULK_DRAIN_BATCH if lane == BULK
            else settings.WHATSAPP_WEBHOOK_DRAIN_BATCH)


def announce(log_id: int, *, lane: str = LIVE, tenant: str = NO_TENANT) -> bool:
    """Signals a stored delivery (call after its INSERT commits). False: not signalled.

    On False the caller publishes the per-delivery task instead; the row is safe either way.
    """
    token = secrets.token_hex(8)
    try:
        rang = _script(_ANNOUNCE)(
            keys=[RING.format(lane), TENANT.format(lane) + tenant, SLOT.format(lane, 0)],
            args=[log_id, token, STARTING_TTL, tenant])
    except Exception:
        logger.warning("Webhook inbox unavailable; delivery %s falls back to a direct publish",
                       log_id)
        _release(lane, 0, token)  # the call may have reached Redis before failing
        return False
    if rang:
        _start_drainer(lane, 0, token)
    return True


def waiting(lane: str) -> int:
    """Ids waiting in `lane`'s inbox (ops metrics)."""
    return int(_script(_WAITING)(keys=[RING.format(lane)], args=[TENANT.format(lane)]))


def wake() -> bool:
    """Starts a drainer in every lane where ids wait and no drainer holds slot 0 (the sweeper
    calls this); True when it started one."""
    started = False
    for lane in LANES:
        try:
            started |= ready(lane) and _start_if_free(lane, 0)
        except Exception:
            logger.warning("Webhook inbox unavailable; the sweeper enqueues from the database")
            return started
    return started


def _start_drainer(lane: str, slot: int, token: str) -> None:
    try:
        jobs.task(DRAIN_TASK[lane]).delay(slot, token)
    except Exception:
        # No broker. The slot stays taken for STARTING_TTL: meanwhile deliveries are only
        # pushed (a publish attempt costs a request ~0.3 s of retries), then the next
        # delivery or the sweeper tries again.
        logger.warning("Could not start a webhook drainer; retrying in %s s", STARTING_TTL)
        try:
            _redis().expire(SLOT.format(lane, slot), STARTING_TTL)
        except Exception:
            pass


def _hold(lane: str, slot: int, token: str) -> bool:
    return bool(_script(_HOLD)(keys=[SLOT.format(lane, slot)], args=[token, _slot_ttl()]))


def _release(lane: str, slot: int, token: str) -> None:
    try:
        _script(_RELEASE)(keys=[SLOT.format(lane, slot)], args=[token])
    except Exception:
        pass  # it expires by itself


def _start_if_free(lane: str, slot: int) -> bool:
    """Takes `slot` for a new drainer and starts it; False when a drainer already holds it."""
    token = secrets.token_hex(8)
    if not _redis().set(SLOT.format(lane, slot), token, nx=True, ex=STARTING_TTL):
        return False
    _start_drainer(lane, slot, token)
    return True


def _busy_prefix(lane: str) -> str:
    """Live drainers skip tenants whose bulk import is running; bulk drainers skip nobody."""
    return BUSY if lane == LIVE else ""


def take(lane: str, count: int) -> list[tuple[str, int]]:
    """Pops up to `count` ids round robin across `lane`'s tenants: (tenant, id) pairs."""
    flat = _script(_TAKE)(keys=[RING.format(lane)],
                          args=[TENANT.format(lane), count, _busy_prefix(lane)])
    return [(flat[i].decode(), int(flat[i + 1])) for i in range(0, len(flat), 2)]


def ready(lane: str) -> bool:
    """True when `lane` has ids a drainer may take now (from a tenant that is not busy)."""
    return bool(_script(_READY)(keys=[RING.format(lane)], args=[_busy_prefix(lane)]))


def _process(lane: str, tenant: str, log_id: int) -> str:
    """One delivery; a bulk one marks its tenant busy meanwhile, then wakes the live lane
    (whose drainer may have stopped with only that tenant's ids left)."""
    if lane != BULK or tenant == NO_TENANT:
        return webhook_process(log_id)
    client = _redis()
    client.set(BUSY + tenant, log_id, ex=_slot_ttl())
    try:
        return webhook_process(log_id)
    finally:
        client.delete(BUSY + tenant)
        if ready(LIVE):
            _start_if_free(LIVE, 0)


def drain(lane: str, slot: int, token: str, *, on_result=None) -> int:
    """Processes `lane`'s announced deliveries until its inbox is empty or the turn is over.

    Runs as the task holding the lane's drainer slot `slot` (proved by `token`); a drainer
    that finds its slot held by another token stops at once. Returns how many deliveries it
    processed. `on_result(log_id, status)` sees every outcome (the task schedules retries with
    it). Whatever happens, ids popped but not processed go back to the head of their lists.
    """
    client = _redis()
    slot_key = SLOT.format(lane, slot)
    batch = _batch(lane)
    deadline = time.monotonic() + settings.WHATSAPP_WEBHOOK_DRAIN_SECONDS
    if not _hold(lane, slot, token):
        return 0
    renewed = time.monotonic()
    processed, pending = 0, []
    finished = fresh = False
    try:
        while True:
            if not pending:
                pending = take(lane, batch)
                fresh = True
                if not pending:
                    _release(lane, slot, token)
                    # A delivery announced between our empty pop and the release found the
                    # slot taken and started nobody: look again now that the slot is free.
                    if ready(lane) and client.set(slot_key, token, nx=True, ex=_slot_ttl()):
                        continue
                    finished = True
                    return processed
                if slot + 1 < _drainers(lane) and ready(lane):
                    _start_if_free(lane, slot + 1)  # a helper for the backlog
            if time.monotonic() >= deadline:
                # Turn over: a fresh task at the back of the Celery queue keeps the slot.
                _put_back(lane, pending)
                pending = []
                if _hold(lane, slot, token):
                    finished = True
                    _start_drainer(lane, slot, token)
                return processed
            if time.monotonic() - renewed > _slot_ttl() / 3:
                if not _hold(lane, slot, token):
                    return processed  # superseded (our slot expired and was taken)
                renewed = time.monotonic()
            if fresh and lane == LIVE:
                # The batch's live deliveries together (set-based; one that fails is then
                # processed alone): tenants whose bulk import holds their numbers wait for it.
                fresh = False
                busy = {t for t in {t for t, _ in pending} if client.exists(BUSY + t)}
                if busy:
                    _put_back(lane, [item for item in pending if item[0] in busy])
                    pending = [item for item in pending if item[0] not in busy]
                ids = [log_id for _, log_id in pending]
                outcomes = process_together(ids)  # takes the applied ids off `ids`
                left = set(ids)
                pending = [item for item in pending if item[1] in left]
                for log_id, status in outcomes:
                    processed += 1
                    if on_result:
                        on_result(log_id, status)
                continue
            fresh = False
            if lane == LIVE and client.exists(BUSY + pending[0][0]):
                # Its tenant's bulk import started since the take: its ids wait for it.
                busy = pending[0][0]
                _put_back(lane, [item for item in pending if item[0] == busy])
                pending = [item for item in pending if item[0] != busy]
                continue
            tenant, log_id = pending.pop(0)
            status = _process(lane, tenant, log_id)
            processed += 1
            if on_result:
                on_result(log_id, status)
    finally:
        _put_back(lane, pending)
        if not finished:
            _release(lane, slot, token)


def _put_back(lane: str, pending: list[tuple[str, int]]) -> None:
    """Returns popped ids to the end their lists are read from next, oldest first (never
    lost: the sweeper would find their rows anyway)."""
    if not pending:
        return
    args = [TENANT.format(lane)]
    for tenant, log_id in pending:
        args += [tenant, log_id]
    try:
        _script(_PUT_BACK)(keys=[RING.format(lane)], args=args)
    except Exception:
        logger.warning("Could not return %s webhook ids to the inbox; the sweeper will "
                       "pick them up", len(pending))
