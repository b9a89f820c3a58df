"""One builder per event type: what a room passes to `outbox.emit` for the fact it writes."""

from datetime import datetime

from whatsapp.models import Connection, Contact, Message, OutboundMessage

from .outbox import Pending, connection_stream, contact_stream
from .payloads import (
    connection_data,
    contact_data,
    iso,
    message_data,
    number_data,
    outbound_data,
)


def contact_created(contact: Contact) -> Pending:
    return Pending("contact.created", contact.organization_id, contact_stream(contact.pk),
                   {"contact": contact_data(contact)}, contact_id=contact.pk)


def contact_identified(contact: Contact, *, previous_phone: str, previous_user_id: str,
                       merged_contact_ids: list[int]) -> Pending:
    return Pending("contact.identified", contact.organization_id, contact_stream(contact.pk),
                   {"contact": contact_data(contact),
                    "previous": {"phone": previous_phone or None,
                                 "user_id": previous_user_id or None},
                    "merged_contact_ids": sorted(merged_contact_ids)},
                   contact_id=contact.pk)


def message_received(message: Message, contact: Contact) -> Pending:
    return Pending("message.received", contact.organization_id, contact_stream(contact.pk),
                   {"message": message_data(message), "contact": contact_data(contact),
                    "phone_number": number_data(message.config)},
                   occurred_at=message.timestamp, contact_id=contact.pk)


def message_status(message: OutboundMessage, status: str, at: datetime, errors: list) -> Pending:
    stream = (contact_stream(message.contact_id) if message.contact_id
              else f"recipient:{message.to}")
    return Pending("message.status", message.organization_id, stream,
                   {"message": outbound_data(message, status, at, errors),
                    "contact_id": message.contact_id, "to": message.to or None},
                   occurred_at=at, contact_id=message.contact_id)


def human_takeover(contact: Contact, at: datetime) -> Pending:
    return Pending("conversation.human_takeover", contact.organization_id,
                   contact_stream(contact.pk),
                   {"contact": contact_data(contact), "at": iso(at)},
                   occurred_at=at, contact_id=contact.pk)


def handed_back(contact: Contact, *, by: str, at: datetime, user_id: int | None = None
                ) -> Pending:
    return Pending("conversation.handed_back", contact.organization_id,
                   contact_stream(contact.pk),
                   {"contact": contact_data(contact), "by": by, "user_id": user_id,
                    "human_takeover_at": iso(contact.human_takeover_at), "at": iso(at)},
                   occurred_at=at, contact_id=contact.pk)


def connection_status(connection: Connection, reason: str = "") -> Pending:
    return Pending("connection.status", connection.organization_id,
                   connection_stream(connection.pk),
                   {"connection": connection_data(connection), "reason": reason[:200] or None})
