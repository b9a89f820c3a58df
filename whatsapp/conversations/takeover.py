"""Human takeover that ends: a conversation a person answered from the phone app goes back to
automation when the tenant hands it back, or WHATSAPP_HUMAN_TAKEOVER_HOURS after the person's
last message (beat). Both are lead events (`conversation.handed_back`); the person's hand-back
is also in the audit log (CONVERSATION_HANDED_BACK, with the user). The timeout is not: like the
takeover itself (read from Meta's echoes), it follows from the conversation's own clock, not
from anyone's decision, and its lead event (`by: "timeout"`) is its record."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.models import AuditLog
from audit.services import audit_record
from whatsapp.events import facts
from whatsapp.events.outbox import emit
from whatsapp.models import Contact

logger = logging.getLogger(__name__)

BY_TENANT = "tenant"
BY_TIMEOUT = "timeout"
EXPIRE_BATCH = 200


def taken_over() -> Q:
    """Contacts a person took over and nobody handed back since."""
    return Q(human_takeover_at__isnull=False) & (
        Q(handed_back_at__isnull=True) | Q(handed_back_at__lt=F("human_takeover_at")))


@transaction.atomic
def takeover_hand_back(*, organization_id: int, contact_id: int, user=None,
                       request=None) -> Contact | None:
    """A person hands one of this organization's conversations back to automation: a lead
    event and an audit entry (the user; the request gives IP and user agent). None: no such
    contact in this organization. A conversation not taken over is left as it is (no event)."""
    contact = (Contact.objects.select_for_update(of=("self",)).select_related("organization")
               .filter(organization_id=organization_id, pk=contact_id).first())
    if contact is None or not contact.taken_over:
        return contact
    taken_at = contact.human_takeover_at
    _hand_back(contact, by=BY_TENANT, user_id=user.pk if user else None)
    audit_record(action=AuditLog.Action.CONVERSATION_HANDED_BACK,
                 organization=contact.organization, actor=user, request=request,
                 target=f"contact:{contact.pk}",
                 metadata={"human_takeover_at": taken_at.isoformat()})
    return contact


def _hand_back(contact: Contact, *, by: str, user_id: int | None = None) -> None:
    now = timezone.now()
    contact.handed_back_at = now
    Contact.objects.filter(pk=contact.pk).update(handed_back_at=now, updated_at=now)
    emit(facts.handed_back(contact, by=by, at=now, user_id=user_id))
    logger.info("Conversation of contact %s handed back to automation (%s)", contact.pk, by)


def takeovers_expire(now=None) -> int:
    """Hands back every conversation with no phone-app message for WHATSAPP_HUMAN_TAKEOVER_HOURS;
    one transaction per batch, rows another run holds are skipped."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.WHATSAPP_HUMAN_TAKEOVER_HOURS)
    expired = 0
    while True:
        with transaction.atomic():
            batch = list(Contact.objects.select_for_update(skip_locked=True)
                         .filter(taken_over(), human_takeover_at__lte=cutoff)
                         .order_by("pk")[:EXPIRE_BATCH])
            for contact in batch:
                _hand_back(contact, by=BY_TIMEOUT)
        expired += len(batch)
        if len(batch) < EXPIRE_BATCH:
            return expired
