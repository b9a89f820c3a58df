"""Per-number pacing under Meta's throughput limits (META-PLATFORM.md §6), shared by every
worker process through one Redis script.

A sliding-window log per number: a sorted set of the instants (Redis server time, µs) at which
a Graph call was let through. A call goes only while fewer than `limit` calls happened in the
last second, so no one-second window ever holds more than `limit` calls, whatever the number of
workers or hosts (SPEC §8.11: process-local counters are not valid across processes). The clock
is Redis's own, so hosts with skewed clocks still agree.
"""

import logging
import secrets
import time
from datetime import UTC, datetime

from django.conf import settings

from config.cache import redis_client

logger = logging.getLogger(__name__)
WINDOW_US = 1_000_000

# Atomic: trim the window, count, and either record this call or say how long to wait.
SLOT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.floor(window / 1000) + 1000)
  return {1, now}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now + 1}
"""


def limit_for(config) -> int:
    """Messages per second Meta allows this number (coexistence numbers: fixed at 20)."""
    if config.is_on_biz_app:
        return settings.WHATSAPP_THROUGHPUT_COEXISTENCE_MPS
    return settings.WHATSAPP_THROUGHPUT_MPS


def _key(phone_number_id: str) -> str:
    return f"whatsapp:pacing:{phone_number_id}"


def slot_take(phone_number_id: str, limit: int) -> tuple[bool, int]:
    """One try: (True, now µs) when the call may go now, else (False, µs to wait)."""
    allowed, value = redis_client().eval(SLOT_SCRIPT, 1, _key(phone_number_id), limit,
                                         WINDOW_US, secrets.token_hex(6))
    return bool(allowed), int(value)


def slot_wait(phone_number_id: str, limit: int, *,
              max_wait: float) -> tuple[datetime | None, float]:
    """Waits (at most `max_wait` seconds) for a slot; returns (when granted, 0) or (None, wait).

    The short sleep is the pacing itself; anything longer goes back to the queue so a worker
    is never parked for long on one busy number.
    """
    deadline = time.monotonic() + max_wait
    while True:
        try:
            allowed, value = slot_take(phone_number_id, limit)
        except Exception:
            # No Redis (embedded default) or Redis down: let it through. Meta answers 130429
            # when we are over, and that error is retried with backoff.
            logger.warning("Pacing unavailable for %s; sending unpaced", phone_number_id)
            return datetime.now(UTC), 0.0
        if allowed:
            return datetime.fromtimestamp(value / 1_000_000, tz=UTC), 0.0
        wait = value / 1_000_000
        if time.monotonic() + wait > deadline:
            return None, wait
        time.sleep(wait)
