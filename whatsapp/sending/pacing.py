"""Per-number pacing under Meta's throughput limits (META-PLATFORM.md §6), shared by every
worker process through one Redis script.

A sliding-window log per number: a sorted set of the instants (Redis server time, µs) at which
a Graph call was let through. A call goes only while fewer than `limit` calls happened in the
last second, so no one-second window ever holds more than `limit` calls, whatever the number of
workers or hosts (SPEC §8.11: process-local counters are not valid across processes). The clock
is Redis's own, so hosts with skewed clocks still agree.

Meta's pair rate: about one message per 6 s to the same user (error 131056 past it). A send
with a recipient also takes a gate per (number, recipient), `PX` the pair window, in the same
script and the same round trip: a slot is only recorded when both let it through, so a send
held back by its recipient never uses up a slot of its number, and a number's other recipients
go on at full speed.

A wait longer than `WHATSAPP_PACING_MAX_WAIT_SECONDS` goes back to the queue (the worker is
free for other numbers' sends meanwhile); only short waits are slept, so one busy number never
holds a worker process that other numbers' sends are queued behind.
"""

import logging
import secrets
import time
from datetime import UTC, datetime

from django.conf import settings

from config.cache import redis_client

logger = logging.getLogger(__name__)
WINDOW_US = 1_000_000


def window_us() -> int:
    """The window the pacer counts in: one second plus a margin for the time between the
    grant and the call reaching Meta (a call held up on its way must not bring the next
    second's calls into the same one-second window there)."""
    return WINDOW_US + int(settings.WHATSAPP_PACING_MARGIN_MS * 1000)

# Why a call was not let through.
NUMBER, RECIPIENT = "number", "recipient"

# Atomic: the recipient's gate, then trim the number's window, count, and either record this
# call (and close the gate for the pair window) or say how long to wait and why.
# KEYS: number window, recipient gate; ARGV: limit, window µs, member, pair window ms (0: none).
SLOT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
local pair = tonumber(ARGV[4])
if pair > 0 then
  local left = redis.call('PTTL', KEYS[2])
  if left > 0 then return {0, left * 1000 + 1, 2} end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.floor(window / 1000) + 1000)
  if pair > 0 then redis.call('SET', KEYS[2], now, 'PX', pair) end
  return {1, now, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now + 1, 1}
"""


def limit_for(config) -> int:
    """Messages per second Meta allows this number (coexistence numbers: fixed at 20)."""
    if config.is_on_biz_app:
        return settings.WHATSAPP_THROUGHPUT_COEXISTENCE_MPS
    return settings.WHATSAPP_THROUGHPUT_MPS


def _key(phone_number_id: str) -> str:
    return f"whatsapp:pacing:{phone_number_id}"


def _pair_key(phone_number_id: str, recipient: str) -> str:
    return f"whatsapp:pacing:{phone_number_id}:to:{recipient}"


def pair_window_ms() -> int:
    return int(settings.WHATSAPP_PAIR_RATE_SECONDS * 1000)


def slot_take(phone_number_id: str, limit: int, recipient: str = "") -> tuple[bool, int]:
    """One try: (True, now µs) when the call may go now, else (False, µs to wait)."""
    allowed, value, _ = _take(phone_number_id, limit, recipient)
    return allowed, value


def _take(phone_number_id: str, limit: int, recipient: str) -> tuple[bool, int, str]:
    pair = pair_window_ms() if recipient else 0
    allowed, value, why = redis_client().eval(
        SLOT_SCRIPT, 2, _key(phone_number_id), _pair_key(phone_number_id, recipient or "-"),
        limit, window_us(), secrets.token_hex(6), pair)
    return bool(allowed), int(value), {1: NUMBER, 2: RECIPIENT}.get(int(why), "")


def pair_hold(phone_number_id: str, recipient: str, seconds: float | None = None) -> None:
    """Closes the recipient's gate for `seconds` (default: the pair window): Meta answered
    131056, so whatever we believed, the pair is over its rate now."""
    ms = int((seconds if seconds is not None else settings.WHATSAPP_PAIR_RATE_SECONDS) * 1000)
    try:
        redis_client().set(_pair_key(phone_number_id, recipient), "131056", px=max(ms, 1))
    except Exception:
        logger.warning("Pacing unavailable for %s; the retry is only scheduled", phone_number_id)


def pair_release(phone_number_id: str, recipient: str) -> None:
    """Opens the recipient's gate again: the call it was closed for delivered nothing (Graph
    refused it or never answered with a message id)."""
    try:
        redis_client().delete(_pair_key(phone_number_id, recipient))
    except Exception:
        pass  # it expires by itself


def slot_wait(phone_number_id: str, limit: int, *, max_wait: float, recipient: str = ""
              ) -> tuple[datetime | None, float]:
    """Waits (at most `max_wait` seconds) for a slot; returns (when granted, 0) or (None, wait).

    With `recipient`, the pair gate too. The short sleep is the pacing itself; anything
    longer goes back to the queue so a worker is never parked for long on one busy number or
    one recipient.
    """
    deadline = time.monotonic() + max_wait
    while True:
        try:
            allowed, value, why = _take(phone_number_id, limit, recipient)
        except Exception:
            # No Redis (embedded default) or Redis down: let it through. Meta answers 130429
            # (or 131056 for a pair) when we are over, and those are rescheduled.
            logger.warning("Pacing unavailable for %s; sending unpaced", phone_number_id)
            return datetime.now(UTC), 0.0
        if allowed:
            return datetime.fromtimestamp(value / 1_000_000, tz=UTC), 0.0
        wait = value / 1_000_000
        if why == RECIPIENT or time.monotonic() + wait > deadline:
            # A pair window is seconds long: never slept, whatever max_wait says.
            return None, wait
        time.sleep(wait)


# Up to k slots of one number in one round trip (the batch sender, whatsapp/sending/batch.py):
# the same trim-count-record as SLOT_SCRIPT, atomic, so the sliding-window guarantee holds
# whatever the number of processes or hosts taking slots at once. One entry per send, in
# order: {1, now, 0} granted; {0, µs, 1} the number's window is full; {0, µs, 2} the
# recipient's pair window is closed (its slot is not used up).
# KEYS: number window, then one pair gate per send; ARGV: limit, window µs, member, pair ms,
# then per send 1 (gated by its recipient) or 0 (no recipient to gate).
SLOTS_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
local pair = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local free = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1])
local out = {}
local full = nil
for i = 2, #KEYS do
  local gated = pair > 0 and ARGV[3 + i] == '1'
  local left = 0
  if gated then left = redis.call('PTTL', KEYS[i]) end
  if left > 0 then
    out[#out + 1] = {0, left * 1000 + 1, 2}
  elseif free > 0 then
    redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3] .. ':' .. i)
    if gated then redis.call('SET', KEYS[i], now, 'PX', pair) end
    free = free - 1
    out[#out + 1] = {1, now, 0}
  else
    if full == nil then
      local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
      full = tonumber(oldest[2]) + window - now + 1
    end
    out[#out + 1] = {0, full, 1}
  end
end
redis.call('PEXPIRE', KEYS[1], math.floor(window / 1000) + 1000)
return out
"""

# How many calls the number may still make now (a hint for the size of the next claim; the
# grant itself is SLOTS_SCRIPT's), and µs until the oldest call leaves the window.
FREE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local free = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1])
if free > 0 then return {free, 0} end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now + 1}
"""


def slots_free(phone_number_id: str, limit: int) -> tuple[int, float]:
    """(calls the number may make now, seconds until one more may go when none may).
    Without Redis: (limit, 0), as slot_wait lets calls through unpaced."""
    try:
        free, wait = redis_client().eval(FREE_SCRIPT, 1, _key(phone_number_id), limit,
                                         window_us())
    except Exception:
        return limit, 0.0
    return int(free), int(wait) / 1_000_000


def slots_take(phone_number_id: str, limit: int, recipients: list[str]
               ) -> list[tuple[datetime | None, float, str]]:
    """One slot per recipient ("" = no pair gate), atomically: for each, (granted at, 0, "")
    or (None, seconds to wait, NUMBER | RECIPIENT)."""
    if not recipients:
        return []
    pair = pair_window_ms() if any(recipients) else 0
    gates = [_pair_key(phone_number_id, r or "-") for r in recipients]
    try:
        rows = redis_client().eval(SLOTS_SCRIPT, 1 + len(gates), _key(phone_number_id), *gates,
                                   limit, window_us(), secrets.token_hex(6), pair,
                                   *("1" if r else "0" for r in recipients))
    except Exception:
        logger.warning("Pacing unavailable for %s; sending unpaced", phone_number_id)
        now = datetime.now(UTC)
        return [(now, 0.0, "") for _ in recipients]
    out = []
    for allowed, value, why in rows:
        if allowed:
            out.append((datetime.fromtimestamp(int(value) / 1_000_000, tz=UTC), 0.0, ""))
        else:
            out.append((None, int(value) / 1_000_000, {1: NUMBER, 2: RECIPIENT}[int(why)]))
    return out
