"""Delivering lead events: to the subscribers' tasks, and over HTTP in order per conversation.

HTTP: the dispatcher takes the head of one stream at a time (the lowest sequence not yet
acknowledged, when it is due), locked with SELECT … FOR UPDATE SKIP LOCKED for the length of
the POST. Event n+1 of a stream is not a head while event n is pending or dead, so it is never
sent before n was acknowledged; other streams go on. A worker killed mid-POST loses its
database connection, the lock goes with it and the event is sent again (same `webhook-id`: the
receiver dedupes). A failure waits LEAD_EVENTS_RETRY_SCHEDULE[attempt]; after the last one the
event is dead and holds its stream until it is replayed (admin or `replay_lead_events`).
"""

import logging
import time
from datetime import timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from whatsapp.core import jobs
from whatsapp.models import LeadEvent

from . import signing
from .outbox import doorbell_clear, ring
from .payloads import event_bytes
from .subscribers import subscribers_for

logger = logging.getLogger(__name__)

D = LeadEvent.Delivery
# A retry due within this many seconds gets its own delayed task; later ones wait for beat.
SOON_SECONDS = 600
FANOUT_BATCH = 500


def dispatch(*, budget_seconds: float = 50.0) -> int:
    """Fans out to subscribers, then POSTs due heads until none is left or the budget is
    spent (then hands over to a fresh task). Returns how many POSTs were made."""
    fan_out()
    if not settings.LEAD_EVENTS_URL:
        return 0
    deadline = time.monotonic() + budget_seconds
    posts, retry_in = 0, None
    while True:
        if time.monotonic() > deadline:
            jobs.enqueue_quietly("deliver_lead_events")
            break
        outcome = deliver_next()
        if outcome is None:
            # Clear the doorbell, then look once more: an event committed while we held it
            # rang nobody, and this look sees it.
            doorbell_clear()
            outcome = deliver_next()
            if outcome is None:
                break
        posts += 1
        if outcome > 0:
            retry_in = outcome if retry_in is None else min(retry_in, outcome)
    if retry_in is not None and retry_in <= SOON_SECONDS:
        jobs.enqueue_quietly("deliver_lead_events", countdown=retry_in)
    return posts


def heads(now) -> QuerySet[LeadEvent]:
    """Due events with no earlier event of their stream still pending or dead."""
    earlier = LeadEvent.objects.filter(stream=OuterRef("stream"),
                                       sequence__lt=OuterRef("sequence"),
                                       delivery__in=[D.PENDING, D.DEAD])
    return (LeadEvent.objects.filter(delivery=D.PENDING, next_attempt_at__lte=now)
            .exclude(Exists(earlier)).order_by("next_attempt_at"))


def deliver_next() -> float | None:
    """POSTs one due head. None: nothing due; 0: acknowledged or dead; > 0: seconds until
    its retry."""
    now = timezone.now()
    with transaction.atomic():
        event = heads(now).select_for_update(skip_locked=True).first()
        if event is None:
            return None
        error = _post(event)
        return _record(event, error)


def _post(event: LeadEvent) -> str:
    """'' when the receiver answered 2xx, else a short reason (never the URL or a secret)."""
    body = event_bytes(event)
    event_id = str(event.pk)
    try:
        response = requests.post(
            settings.LEAD_EVENTS_URL, data=body,
            headers=signing.headers(settings.LEAD_EVENTS_SECRET, event_id, int(time.time()), body),
            timeout=settings.LEAD_EVENTS_TIMEOUT_SECONDS, allow_redirects=False)
    except requests.RequestException as exc:
        return type(exc).__name__
    return "" if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"


def _record(event: LeadEvent, error: str) -> float:
    now = timezone.now()
    event.attempts += 1
    if not error:
        event.delivery, event.delivered_at, event.last_error = D.DELIVERED, now, ""
        event.next_attempt_at = None
        wait = 0.0
    else:
        event.last_error = error
        schedule = settings.LEAD_EVENTS_RETRY_SCHEDULE
        if event.attempts > len(schedule):
            event.delivery, event.next_attempt_at, wait = D.DEAD, None, 0.0
            logger.error("Lead event %s (%s #%s) dead after %s attempts: %s", event.pk,
                         event.stream, event.sequence, event.attempts, error)
        else:
            wait = schedule[event.attempts - 1]
            event.next_attempt_at = now + timedelta(seconds=wait)
            logger.warning("Lead event %s attempt %s failed (%s); next in %s s", event.pk,
                           event.attempts, error, wait)
    event.save(update_fields=["attempts", "delivery", "delivered_at", "last_error",
                              "next_attempt_at"])
    return wait


def fan_out() -> int:
    """Publishes one subscriber task per (event, subscriber) for events not yet handed out."""
    handed = 0
    with transaction.atomic():
        events = list(LeadEvent.objects.filter(fanned_out=False).order_by("created_at")
                      .select_for_update(skip_locked=True)[:FANOUT_BATCH])
        done = []
        for event in events:
            published = [jobs.enqueue_quietly("run_lead_event_subscriber", str(event.pk), path)
                         for path in subscribers_for(event.type)]
            if not all(published):
                break  # the broker is down: the sweep hands the rest out later
            done.append(event.pk)
        handed = LeadEvent.objects.filter(pk__in=done).update(fanned_out=True)
    return handed


def replay(events: QuerySet[LeadEvent]) -> int:
    """Dead events are sent again from their first attempt, in their streams' order."""
    count = events.filter(delivery=D.DEAD).update(
        delivery=D.PENDING, attempts=0, next_attempt_at=timezone.now(), last_error="")
    if count:
        transaction.on_commit(ring)
    return count


def sweep() -> int:
    """Beat: runs a dispatcher whatever the doorbell says (a killed one may have left it)."""
    return dispatch()
