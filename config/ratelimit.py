"""Fixed-window rate limits on Redis atomics (INCR + EXPIRE in one pipeline), failing open.

Counters live in Redis so they hold across gunicorn workers and hosts (SPEC §8.11); a Redis
outage allows every request, because refusing real traffic is worse than letting a burst in.
Two users: the org-facing API (`OrganizationRateThrottle`, per organization and view) and
invalid-signature webhook traffic per IP (`whatsapp.webhooks.count_invalid_signature`).
Each activation (an identity's first refusal in a window) is counted per minute in Redis
(`ratelimit:activations:<epoch minute>`, kept 2 h) for the ops alert.
"""

import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import ngettext
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from .cache import redis_client
from .logging import set_org_id

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    allowed: bool
    count: int
    retry_after: int


def hit(scope: str, ident: str, *, limit: int, window: int) -> Hit:
    """Counts one request of `ident` in `scope`; allowed while the window's count <= limit."""
    now = time.time()
    bucket = int(now // window)
    key = f"ratelimit:{scope}:{ident}:{bucket}"
    retry_after = max(1, math.ceil((bucket + 1) * window - now))
    try:
        pipe = redis_client().pipeline(transaction=True)
        pipe.incr(key)
        # +1 s so the key outlives its window even with clock skew between hosts.
        pipe.expire(key, window + 1)
        count = int(pipe.execute()[0])
    except NotImplementedError:
        return Hit(True, 0, 0)  # embedded default: a local-memory cache, nothing to count in
    except Exception:
        # Redis down: fail open.
        logger.warning("Rate limiter unavailable; allowing %s", scope)
        return Hit(True, 0, 0)
    if count == limit + 1:
        _activation_record(scope, ident, now)
    return Hit(count <= limit, count, retry_after)


ACTIVATIONS_KEY = "ratelimit:activations:{minute}"
ACTIVATIONS_TTL = 2 * 3600


def _activation_record(scope: str, ident: str, now: float) -> None:
    """A limit started refusing `ident` (its first refusal in the window): one more in this
    minute's Redis counter, which ops reads (`activations`)."""
    logger.warning("Rate limit activated: %s for %s", scope, ident)
    try:
        key = ACTIVATIONS_KEY.format(minute=int(now // 60))
        pipe = redis_client().pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, ACTIVATIONS_TTL)
        pipe.execute()
    except Exception:
        logger.warning("Rate limit activation not counted (Redis unavailable)")


def activations(*, minutes: int, now: float | None = None) -> int:
    """Rate-limit activations in the last `minutes` minutes (this one included), any scope."""
    minute = int((now or time.time()) // 60)
    keys = [ACTIVATIONS_KEY.format(minute=m) for m in range(minute - minutes + 1, minute + 1)]
    try:
        return sum(int(v) for v in redis_client().mget(keys) if v)
    except NotImplementedError:
        return 0


class RateLimited(exceptions.Throttled):
    def __init__(self, wait: int) -> None:
        detail = ngettext(
            "Too many requests. Try again in %(seconds)d second.",
            "Too many requests. Try again in %(seconds)d seconds.", wait,
        ) % {"seconds": wait}
        exceptions.APIException.__init__(self, detail, "throttled")
        self.wait = wait


class OrganizationRateThrottle(BaseThrottle):
    """Per organization and per view; limits in `API_RATE_LIMITS` (view name → per minute).

    Raises (instead of returning False) so the answer carries our own pt-BR message; DRF's
    exception handler still sets `Retry-After`.
    """

    def allow_request(self, request, view) -> bool:
        organization = getattr(request, "organization", None)
        if organization is None:
            return True
        set_org_id(organization.pk)  # every API request passes here once it knows its tenant
        name = _view_name(request, view)
        limits = settings.API_RATE_LIMITS
        per_minute = limits.get(name, limits["default"])
        result = hit(f"api:{name}", str(organization.pk), limit=per_minute, window=60)
        if not result.allowed:
            logger.warning("Rate limit hit for organization %s on %s", organization.pk, name)
            raise RateLimited(wait=result.retry_after)
        return True


def _view_name(request, view) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None and match.url_name:
        return match.url_name
    return type(view).__name__
