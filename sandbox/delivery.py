"""Sending webhooks like Meta: signed raw bytes, in the background, retried with backoff.

Deliveries are written to the database first (so pages and tests see them as pending), then a
daemon thread posts them in order. The request that caused them never waits: on the embedded
default the sandbox posts to its own runserver, and a synchronous post would tie up the very
request that is waiting for it.
"""

import hashlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass

import requests
from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from .models import Attempt, Delivery, Subscription, Switches
from .payloads import Change, envelope, wire

logger = logging.getLogger(__name__)
TIMEOUT = (3.05, 10)

_lock = threading.Lock()
_threads: set[threading.Thread] = set()
# Set by reset(): threads started before it stop at their next wait instead of sending.
_stop = threading.Event()


@dataclass
class Step:
    """One webhook body to send, `delay_ms` after the previous one."""

    kinds: list[str]
    changes: list[Change]
    delay_ms: int = 0


def signature(body: bytes) -> str:
    """`X-Hub-Signature-256`: HMAC-SHA256 of the raw bytes with the app secret (§5.1)."""
    digest = hmac.new(settings.META_APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def emit(steps: list[Step]) -> list[int]:
    """Records the deliveries for `steps` (applying the switches) and sends them in a thread."""
    switches = Switches.get()
    planned = _plan(steps, switches)
    rows: list[tuple[int, Delivery]] = []
    for delay, step, url, is_duplicate in planned:
        original = rows[-1][1] if is_duplicate else None
        rows.append((delay, _record(step, url, original)))
    sendable = [(delay, row.pk) for delay, row in rows if row.status == Delivery.Status.PENDING]
    if sendable:
        _spawn(_run_plan, sendable, list(switches.retry_delays or []))
    return [row.pk for _, row in rows]


def _plan(steps: list[Step], switches: Switches) -> list[tuple[int, Step, str, bool]]:
    routed = [(step, _destination(step, switches)) for step in steps]
    dropped = [(0, step, "", False) for step, url in routed if not url]
    routed = [(step, url) for step, url in routed if url]
    if switches.batch and len(routed) > 1:
        # Meta may put many updates in one request: one body, every change kept (§5.4).
        merged = Step(kinds=[k for s, _ in routed for k in s.kinds],
                      changes=[c for s, _ in routed for c in s.changes],
                      delay_ms=routed[0][0].delay_ms)
        routed = [(merged, routed[0][1])]
    if switches.reorder and len(routed) > 1:
        delays = [step.delay_ms for step, _ in routed]
        routed = [(Step(s.kinds, s.changes, d), url)
                  for (s, url), d in zip(reversed(routed), delays, strict=True)]
    planned: list[tuple[int, Step, str, bool]] = []
    for step, url in routed:
        planned.append((step.delay_ms, step, url, False))
        if switches.duplicate:
            planned.append((switches.event_gap_ms, step, url, True))
    return dropped + planned


def _destination(step: Step, switches: Switches) -> str:
    """Where Meta would send it; "" when it would not (app not subscribed to the WABA, §3.2)."""
    fields = {change.field for change in step.changes}
    if fields <= {"account_update"}:
        # account_update always goes to the app's default URL, never to an override.
        return switches.target_url
    waba_ids = {change.entry_id for change in step.changes if change.field != "account_update"}
    subscription = Subscription.objects.filter(waba_id__in=waba_ids).first()
    if subscription is None:
        return ""
    return subscription.override_callback_uri or switches.target_url


def _record(step: Step, url: str, original: Delivery | None) -> Delivery:
    return Delivery.objects.create(
        kinds=step.kinds,
        fields=sorted({change.field for change in step.changes}),
        url=url,
        # A duplicate is the very same bytes again, as Meta's redeliveries are.
        body=bytes(original.body) if original else wire(envelope(step.changes)),
        status=Delivery.Status.PENDING if url else Delivery.Status.DROPPED,
        duplicate_of=original,
    )


def _spawn(target, *args, stop: threading.Event | None = None) -> threading.Thread:
    thread = threading.Thread(target=_guarded, args=(target, stop or _stop, *args), daemon=True,
                              name="sandbox-webhooks")
    with _lock:
        _threads.add(thread)
    thread.start()
    return thread


def _guarded(target, stop: threading.Event, *args) -> None:
    try:
        target(stop, *args)
    except Exception:
        logger.exception("Sandbox webhook thread failed")
    finally:
        # Threads must not leave connections open (tests drop their database at the end).
        connections.close_all()
        with _lock:
            _threads.discard(threading.current_thread())


def _run_plan(stop: threading.Event, plan: list[tuple[int, int]], retry_delays: list[int]) -> None:
    for delay_ms, delivery_id in plan:
        if stop.wait(delay_ms / 1000):
            return
        close_old_connections()
        if not _attempt(delivery_id) and retry_delays:
            # Retries run beside the plan, so one failing body does not hold up the next ones.
            _spawn(_retry, delivery_id, retry_delays, stop=stop)


def _retry(stop: threading.Event, delivery_id: int, retry_delays: list[int]) -> None:
    for delay in retry_delays:
        if stop.wait(delay):
            return
        _readdress(delivery_id)
        if _attempt(delivery_id):
            return
    Delivery.objects.filter(pk=delivery_id).update(status=Delivery.Status.FAILED)


def _readdress(delivery_id: int) -> None:
    """Meta retries to the callback URL configured now, not to the one of the first try (an
    app whose URL was fixed gets its backlog there); per-WABA overrides stay as they were."""
    url = Delivery.objects.filter(pk=delivery_id).values_list("url", flat=True).first()
    overrides = Subscription.objects.exclude(override_callback_uri="")
    if url and not overrides.filter(override_callback_uri=url).exists():
        Delivery.objects.filter(pk=delivery_id).update(url=Switches.get().target_url)


def _attempt(delivery_id: int) -> bool:
    delivery = Delivery.objects.filter(pk=delivery_id).first()
    if delivery is None:
        return True  # reset in the meantime: nothing left to send
    body = bytes(delivery.body)
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature(body),
               "User-Agent": "facebookexternalua"}
    started = time.monotonic()
    status_code, response_body, error = None, "", ""
    try:
        response = requests.post(delivery.url, data=body, headers=headers, timeout=TIMEOUT)
        status_code, response_body = response.status_code, response.text[:1000]
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    latency = int((time.monotonic() - started) * 1000)
    Attempt.objects.create(delivery=delivery, status_code=status_code, latency_ms=latency,
                           response_body=response_body, error=error)
    ok = status_code == 200  # Meta retries anything but a 200 (§5.3)
    Delivery.objects.filter(pk=delivery_id).update(
        status=Delivery.Status.DELIVERED if ok else Delivery.Status.RETRYING,
        delivered_at=timezone.now() if ok else None,
    )
    return ok


def in_flight() -> int:
    with _lock:
        return sum(1 for thread in _threads if thread.is_alive())


def stop_all(timeout: float = 15.0) -> None:
    """Stops sending (used by reset): newer plans start clean, older threads end."""
    global _stop
    with _lock:
        _stop.set()
        _stop = threading.Event()
        threads = list(_threads)
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
