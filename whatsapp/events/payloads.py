"""What an event says: the envelope and each type's data (docs/lead-events.schema.json).

Ids and facts only: never a token, a secret or Meta's raw payload.
"""

import json

from whatsapp.models import Connection, Contact, LeadEvent, Message, OutboundMessage, PhoneNumber

SCHEMA_VERSION = 1


def iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def event_body(event: LeadEvent) -> dict:
    """The envelope every receiver gets, the same bytes on every attempt (see `event_bytes`)."""
    return {
        "id": str(event.pk),
        "type": event.type,
        "version": SCHEMA_VERSION,
        "timestamp": iso(event.occurred_at),
        "organization_id": str(event.organization_id),
        "conversation": event.stream,
        "sequence": event.sequence,
        "data": event.data,
    }


def event_bytes(event: LeadEvent) -> bytes:
    return json.dumps(event_body(event), separators=(",", ":"), ensure_ascii=False,
                      sort_keys=True).encode()


def contact_data(contact: Contact) -> dict:
    return {
        "id": contact.pk,
        "phone": contact.wa_id or None,
        "user_id": contact.user_id or None,
        "username": contact.username or None,
        "profile_name": contact.profile_name or None,
        "saved_name": contact.saved_name or None,
        "referral": contact.referral,
        "human_takeover": contact.taken_over,
    }


def number_data(config: PhoneNumber | None) -> dict | None:
    if config is None:
        return None
    return {"id": config.pk, "phone_number_id": config.phone_number_id,
            "display_phone_number": config.display_phone_number or None}


def message_data(message: Message) -> dict:
    return {
        "id": message.pk,
        "wamid": message.wamid,
        "direction": message.direction,
        "type": message.type,
        "text": message.body or None,
        "media_id": message.media_id or None,
        "reply_to_wamid": message.reply_to_wamid or None,
        "target_wamid": message.target_wamid or None,
        "referral": message.referral,
        "timestamp": iso(message.timestamp),
    }


def outbound_data(message: OutboundMessage, status: str, at, errors: list) -> dict:
    return {
        "id": str(message.pk),
        "wamid": message.wamid,
        "status": status,
        "message_status": message.status,
        "automated": message.automated,
        "at": iso(at),
        "errors": [{k: e.get(k) for k in ("code", "title", "message") if k in e}
                   for e in errors if isinstance(e, dict)],
    }


def connection_data(connection: Connection) -> dict:
    return {
        "id": str(connection.pk),
        "waba_id": connection.waba_id,
        "status": connection.status,
        "token_status": connection.token_status,
    }
