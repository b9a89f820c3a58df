"""The Redis side of tracking codes: `whatsapp:onboarding:{code}` with the onboarding's TTL.

Redis is only a cache: the `Onboarding` row is the truth, so every function here tolerates
Redis being down (logs a warning and lets the caller fall back to the database).
"""

import logging
import uuid

from django.core.cache import cache

logger = logging.getLogger(__name__)


def cache_key(code: uuid.UUID | str) -> str:
    return f"whatsapp:onboarding:{code}"


def remember(*, code: uuid.UUID, organization_id: str, onboarding_id: str, created_at: int,
             redirect_path: str, ttl: int) -> bool:
    value = {
        "organizationId": organization_id,
        "onboardingId": onboarding_id,
        "createdAt": created_at,
        "redirectPath": redirect_path,
    }
    try:
        cache.set(cache_key(code), value, timeout=ttl)
        return True
    except Exception:  # any cache outage: the DB row still holds the code
        logger.warning("Redis unavailable: tracking code kept in the database only")
        return False


def lookup(code: uuid.UUID | str) -> dict | None:
    try:
        return cache.get(cache_key(code))
    except Exception:
        logger.warning("Redis unavailable: resolving tracking code from the database")
        return None


def forget(code: uuid.UUID | str) -> None:
    try:
        cache.delete(cache_key(code))
    except Exception:
        # The key expires by its TTL anyway (SPEC §8.3: never scan for keys).
        logger.warning("Redis unavailable: tracking code key left to expire by TTL")
