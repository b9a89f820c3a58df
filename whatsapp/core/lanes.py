"""Lanes: live traffic and bulk traffic never wait in the same queue (issue 17).

A delivery is `bulk` when every change in it is bulk work (a coexistence number's history
chunks, its contacts sync `smb_app_state_sync`); anything else — messages, statuses, echoes,
account and template events, quality updates, fields we do not know — is `live`, and so is a
delivery that mixes both. Each lane has its own Redis inbox (`whatsapp.webhooks.inbox`) and
its own Celery tasks, routed to their own queues (`config/settings/lanes.py`), so a worker that
serves only the bulk queues never takes a live delivery, and live work never waits behind
bulk work. `WHATSAPP_LANES=false` puts everything in the live lane (one inbox, one queue).

The webhook classifies a delivery without parsing it: parsing a 3 MB history chunk costs the
request tens of milliseconds, scanning its bytes for the `"field"` keys well under one. In
Meta's compact JSON the bytes `"field"` can only be a key: inside a string a quote is `\\"`.
The tenant key (the WABA id, `entry[0].id`, first in Meta's envelope) only spreads a lane's
work fairly between tenants; no guarantee depends on it (a body where it is not found shares
the key `-`).
"""

import re

from django.conf import settings

LIVE, BULK = "live", "bulk"
LANES = (LIVE, BULK)
# Changes that are bulk work; every other field is live.
BULK_FIELDS = frozenset({"history", "smb_app_state_sync"})
# Per-delivery processing task (fallback when the inbox is down, retries, sweeps, unpark).
PROCESS_TASK = {LIVE: "process_webhook", BULK: "process_webhook_bulk"}

_FIELD = re.compile(rb'"field"\s*:\s*"([A-Za-z0-9_]{1,64})"')
_TENANT = re.compile(rb'"entry"\s*:\s*\[\s*\{\s*"id"\s*:\s*"([0-9A-Za-z_]{1,64})"')
# The WABA id is within the envelope's first bytes.
TENANT_HEAD_BYTES = 256
NO_TENANT = "-"


def enabled() -> bool:
    return settings.WHATSAPP_LANES


def fields_in(body: bytes) -> list[str]:
    """The change fields a delivery names, in order, without duplicates (a byte scan)."""
    found: list[str] = []
    start = body.find(b'"field"')
    while start != -1:
        match = _FIELD.match(body, start)
        if match:
            name = match.group(1).decode()
            if name not in found:
                found.append(name)
        start = body.find(b'"field"', start + 7)
    return found


def lane_of(fields) -> str:
    """`bulk` when every field is bulk work; `live` otherwise (and when lanes are off)."""
    if enabled() and fields and all(field in BULK_FIELDS for field in fields):
        return BULK
    return LIVE


def tenant_of(body: bytes) -> str:
    """The delivery's WABA id from its first bytes (`-` when not found)."""
    match = _TENANT.search(body[:TENANT_HEAD_BYTES])
    return match.group(1).decode() if match else NO_TENANT


def process_task(fields) -> str:
    """The per-delivery processing task for a delivery with `fields` (its lane's queue)."""
    return PROCESS_TASK[lane_of(fields)]
