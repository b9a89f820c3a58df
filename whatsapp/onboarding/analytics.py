"""Seed 001's analytics events: stored once each, forwarded later (never in the request)."""

import logging

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from whatsapp.core import jobs
from whatsapp.models import AnalyticsEvent

logger = logging.getLogger(__name__)
Name = AnalyticsEvent.Name


def analytics_record(*, name: str, dedupe_key: str, organization=None, user=None,
                     properties: dict | None = None) -> AnalyticsEvent | None:
    """Stores an event unless one with the same key exists; enqueues forwarding on commit."""
    try:
        with transaction.atomic():
            event = AnalyticsEvent.objects.create(
                name=name, dedupe_key=dedupe_key, organization=organization,
                user=user if getattr(user, "is_authenticated", False) else None,
                properties=properties or {},
            )
    except IntegrityError:
        return None  # already recorded: "once each"
    if settings.ANALYTICS_ENDPOINT:
        transaction.on_commit(lambda: jobs.enqueue_quietly("forward_analytics_event", event.pk))
    return event


def analytics_forward(event_id: int) -> bool:
    """POSTs one event to ANALYTICS_ENDPOINT (Segment-like JSON). True when accepted."""
    event = AnalyticsEvent.objects.filter(pk=event_id, forwarded_at__isnull=True).first()
    if event is None:
        return True
    payload = {
        "event": event.name,
        "properties": event.properties,
        "userId": str(event.user_id or ""),
        "groupId": str(event.organization_id or ""),
        "timestamp": event.created_at.isoformat(),
        "messageId": event.dedupe_key,
    }
    headers = {}
    if settings.ANALYTICS_WRITE_KEY:
        headers["Authorization"] = f"Bearer {settings.ANALYTICS_WRITE_KEY}"
    try:
        response = requests.post(settings.ANALYTICS_ENDPOINT, json=payload, headers=headers,
                                 timeout=(3.05, 10))
        response.raise_for_status()
    except requests.RequestException as exc:
        AnalyticsEvent.objects.filter(pk=event_id).update(forward_error=str(exc)[:500])
        return False
    AnalyticsEvent.objects.filter(pk=event_id).update(forwarded_at=timezone.now(),
                                                      forward_error="")
    return True
