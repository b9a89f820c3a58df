"""Facts Meta sends about our numbers themselves (quality and messaging limit)."""

import logging

from django.db.models import Q

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
    if update.messaging_limit:
        config.messaging_limit = update.messaging_limit[:32]
    config.save(update_fields=["quality_event", "quality_event_at", "messaging_limit",
                               "updated_at"])
    Connection.objects.filter(pk=config.connection_id).touch()
    return config
