"""In-process subscribers: Python functions called with each event of the types they chose.

Register by dotted path, in settings (`LEAD_EVENT_SUBSCRIBERS`) or in code, from an
`AppConfig.ready()` so every process (web, worker) knows it:

    from whatsapp import events
    events.subscribe("message.received", "assistant.leads.on_message")   # or "*"

The function receives the event as the HTTP receiver would (`event_body`: id, type, sequence,
data…). Each (event, subscriber) runs in its own Celery task (`run_lead_event_subscriber`)
with its own retries: a failing subscriber never holds up ingestion, HTTP delivery or the other
subscribers. Delivery is at least once: a subscriber dedupes on the event `id`.
"""

import logging
from collections.abc import Callable

from django.conf import settings
from django.utils.module_loading import import_string

from .payloads import event_body

logger = logging.getLogger(__name__)

_registered: dict[str, list[str]] = {}


def subscribe(event_type: str, subscriber: str | Callable) -> None:
    """Registers a subscriber (a dotted path, or a module-level function) for a type or "*"."""
    path = subscriber if isinstance(subscriber, str) else (
        f"{subscriber.__module__}.{subscriber.__qualname__}")
    paths = _registered.setdefault(event_type, [])
    if path not in paths:
        paths.append(path)


def unsubscribe(event_type: str, subscriber: str) -> None:
    if subscriber in _registered.get(event_type, []):
        _registered[event_type].remove(subscriber)


def subscribers_for(event_type: str) -> list[str]:
    """Every subscriber of this type, settings first, each once."""
    found: list[str] = []
    for source in (settings.LEAD_EVENT_SUBSCRIBERS, _registered):
        for key in (event_type, "*"):
            found += [p for p in source.get(key, []) if p not in found]
    return found


def subscriber_run(event, path: str) -> bool:
    """Calls one subscriber with one event; False when it is no longer registered."""
    if path not in subscribers_for(event.type):
        logger.warning("Lead event subscriber %s is no longer registered for %s", path,
                       event.type)
        return False
    function = import_string(path)
    function(event_body(event))
    return True
