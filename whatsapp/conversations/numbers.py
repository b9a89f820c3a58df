"""Facts Meta sends about our numbers themselves (quality and messaging limit)."""

import logging
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from whatsapp.core.graph import messaging_limit_of
from whatsapp.core.payloads import (
    QualityUpdate,
)
from whatsapp.core.phones import at, normalize_phone
from whatsapp.models import (
    Connection,
    PhoneNumber,
)

logger = logging.getLogger(__name__)


def quality_update_apply(update: QualityUpdate) -> PhoneNumber | None:
    """Matched by display number + WABA (the value has no phone_number_id); newest wins."""
    wanted = normalize_phone(update.display_phone_number)
    candidates = PhoneNumber.objects.select_for_update(of=("self",)).filter(
        Q(connection__waba_id=update.waba_id),
        ~Q(connection__status=Connection.Status.DISCONNECTED),
    ).order_by("phone_number_id")
    config = next((c for c in candidates
                   if wanted and normalize_phone(c.display_phone_number) == wanted), None)
    if config is None:
        logger.warning("phone_number_quality_update for an unknown number of WABA %s: stored only",
                       update.waba_id)
        return None
    when = at(update.time)
    if config.quality_event_at and when and when < config.quality_event_at:
        return config
    config.quality_event = update.event[:32]
    config.quality_event_at = when
    config.save(update_fields=["quality_event", "quality_event_at", "updated_at"])
    # max_daily_conversations_per_business is the portfolio's limit: every number shares it.
    messaging_limit_record(config.connection, update.messaging_limit, when)
    Connection.objects.filter(pk=config.connection_id).touch()
    return config


def portfolio_numbers(connection: Connection) -> QuerySet[PhoneNumber]:
    """The live numbers sharing `connection`'s business portfolio (and so its messaging
    limit), within its organization: another tenant's numbers are never touched."""
    numbers = PhoneNumber.objects.exclude(connection__status=Connection.Status.DISCONNECTED)
    if connection.organization_id and connection.owner_business_id:
        return numbers.filter(
            Q(organization_id=connection.organization_id,
              connection__owner_business_id=connection.owner_business_id)
            | Q(connection=connection))
    return numbers.filter(connection=connection)


def messaging_limit_record(connection: Connection, limit: str,
                           when: datetime | None = None) -> int:
    """Stores the portfolio's messaging limit on its numbers; the newest reading wins (a late
    webhook never undoes a newer Graph read). Returns how many numbers changed."""
    limit = (limit or "").strip().upper()[:32]
    if not limit:
        return 0
    when = when or timezone.now()
    return portfolio_numbers(connection).filter(
        Q(messaging_limit_at__isnull=True) | Q(messaging_limit_at__lte=when),
    ).update(messaging_limit=limit, messaging_limit_at=when, updated_at=timezone.now())


def numbers_health_apply(connection: Connection, numbers: list[dict]) -> None:
    """What `GET /{waba}/phone_numbers` says about the connection's known numbers: quality
    rating per number, messaging limit per portfolio."""
    now = timezone.now()
    for number in numbers:
        quality = str(number.get("quality_rating") or "")[:16]
        if quality:
            PhoneNumber.objects.filter(connection=connection,
                                       phone_number_id=str(number.get("id") or "")).exclude(
                quality_rating=quality).update(quality_rating=quality, updated_at=now)
    limits = [messaging_limit_of(n) for n in numbers]
    messaging_limit_record(connection, next((limit for limit in limits if limit), ""), now)
