"""Retry delays shared by webhook processing and sending."""

import random
from datetime import timedelta


def backoff(attempts: int, *, base: float, cap: float) -> timedelta:
    """base × 2^(attempts-1), capped; half fixed, half random, so a burst of failures spreads
    out without ever retrying at once."""
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))
