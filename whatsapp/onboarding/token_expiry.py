"""Before a business token expires (Meta does not refresh them; seed 004 §6C): the
organization's admins are e-mailed "Reconecte seu WhatsApp até DD/MM" once per threshold of
WHATSAPP_TOKEN_EXPIRY_NOTICE_DAYS (30 and 7 by default). A `TokenExpiryNotice` row is the
durable "sent" marker, written in the same transaction as the send, so a failed send is tried
again on the next run and a sent one never twice. The settings page and the home checklist
show the same date (whatsapp.api.presenters)."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from organizations.models import Membership
from whatsapp.models import Connection, TokenExpiryNotice

logger = logging.getLogger(__name__)


@dataclass
class NoticeSent:
    connection_id: str
    waba_id: str
    threshold_days: int
    recipients: int

    def as_dict(self) -> dict:
        return {"connection_id": self.connection_id, "waba_id": self.waba_id,
                "threshold_days": self.threshold_days, "recipients": self.recipients}


def threshold_for(expires_at, *, now) -> int | None:
    """The smallest threshold the expiry is within (a token first seen 5 days before its
    expiry gets the 7-day notice only, not the 30-day one too)."""
    within = [d for d in settings.WHATSAPP_TOKEN_EXPIRY_NOTICE_DAYS
              if expires_at <= now + timedelta(days=d)]
    return min(within) if within else None


def token_expiry_notices_send(*, now=None) -> list[NoticeSent]:
    """Mails every organization whose live token crossed a threshold not yet mailed."""
    now = now or timezone.now()
    days = max(settings.WHATSAPP_TOKEN_EXPIRY_NOTICE_DAYS, default=0)
    sent = []
    for connection_id in (Connection.objects.token_expiring(days=days, now=now)
                          .values_list("pk", flat=True)):
        notice = _notify(connection_id, now=now)
        if notice:
            sent.append(notice)
    return sent


@transaction.atomic
def _notify(connection_id, *, now) -> NoticeSent | None:
    connection = (Connection.objects.select_for_update(of=("self",), skip_locked=True)
                  .select_related("organization").filter(pk=connection_id).first())
    if connection is None or connection.token_expires_at is None:
        return None
    threshold = threshold_for(connection.token_expires_at, now=now)
    if threshold is None or TokenExpiryNotice.objects.filter(
            connection=connection, threshold_days=threshold,
            token_expires_at=connection.token_expires_at).exists():
        return None
    recipients = sorted(set(
        Membership.objects.filter(organization=connection.organization,
                                  role=Membership.Role.ADMIN, user__is_active=True)
        .exclude(user__email="").values_list("user__email", flat=True)))
    if recipients:
        subject, body = _message(connection)
        # Raises on a mail failure: the transaction (and so the marker) rolls back.
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    else:
        logger.warning("Token of WABA %s expires soon and its organization has no admin "
                       "with an e-mail", connection.waba_id)
    TokenExpiryNotice.objects.create(connection=connection, threshold_days=threshold,
                                     token_expires_at=connection.token_expires_at,
                                     recipients=len(recipients))
    return NoticeSent(str(connection.pk), connection.waba_id, threshold, len(recipients))


def _message(connection: Connection) -> tuple[str, str]:
    with translation.override(settings.LANGUAGE_CODE):
        date = date_format(timezone.localtime(connection.token_expires_at), "d/m")
        numbers = ", ".join(n.display_phone_number for n in connection.phone_numbers.all()
                            if n.display_phone_number) or connection.waba_id
        url = settings.SITE_URL.rstrip("/") + reverse("whatsapp-settings")
        subject = _("Reconnect your WhatsApp by %(date)s") % {"date": date}
        body = _(
            "Hello,\n\nQualifica Leads' access to the WhatsApp of %(organization)s (%(numbers)s) "
            "expires on %(date)s. After that, messages stop arriving in Qualifica Leads.\n\n"
            "To keep receiving them, open Settings › WhatsApp connection and click "
            "“Reconnect”: %(url)s\n\nQualifica Leads"
        ) % {"organization": connection.organization.name, "numbers": numbers, "date": date,
             "url": url}
    return subject, body
