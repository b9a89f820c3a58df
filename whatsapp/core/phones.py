"""Phone numbers and Meta's timestamps, as every room reads them."""

import re
from datetime import UTC, datetime


def normalize_phone(raw: str) -> str:
    """Digits only; Brazilian mobiles always with the 9th digit (55 + DDD + 9 + 8 digits).

    Meta may add or drop the 9th digit of Brazilian numbers in `wa_id`/`from`, so the same
    person can arrive as 55 11 8765-4321 and 55 11 98765-4321. Landlines (8 digits starting
    2–5) have no 9th digit and are left alone.
    """
    digits = re.sub(r"\D", "", raw or "")
    if digits.startswith("55") and len(digits) in (12, 13):
        area, local = digits[2:4], digits[4:]
        if len(local) == 8 and local[0] in "6789":
            local = "9" + local
        return "55" + area + local
    return digits


def at(ts: int | None, fallback: datetime | None = None) -> datetime | None:
    """A Meta timestamp (seconds) as an aware datetime; `fallback` when missing or absurd."""
    if ts is None:
        return fallback
    try:
        return datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return fallback
