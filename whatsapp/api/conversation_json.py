"""How the conversation read API shows a lead and a message (camelCase JSON, no tokens)."""

from datetime import timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from whatsapp.conversations.media import media_link_token
from whatsapp.models import Contact, Message, MessageMedia
from whatsapp.sending.rules import window_open


def contact_json(contact: Contact) -> dict:
    identities = [
        {"kind": i.kind, "value": i.value,
         "current": i.value in (contact.user_id, contact.wa_id) and i.superseded_at is None,
         "firstSeenAt": i.first_seen_at, "supersededAt": i.superseded_at}
        for i in sorted(contact.identities.all(), key=lambda i: (i.kind, i.value))
    ]
    if contact.username:
        identities.append({"kind": "username", "value": contact.username, "current": True,
                           "firstSeenAt": contact.profile_name_at, "supersededAt": None})
    return {
        "id": contact.pk, "name": str(contact), "profileName": contact.profile_name or None,
        "savedName": contact.saved_name or None, "username": contact.username or None,
        "phone": contact.wa_id or None, "userId": contact.user_id or None,
        "identities": identities,
        # Answerable: a phone (`to`) or, for a username-only lead, a BSUID (`recipient`).
        "addressable": bool(contact.wa_id or contact.user_id),
        "lastInboundAt": contact.last_inbound_at, "serviceWindowOpen": window_open(contact),
        "humanTakeoverAt": contact.human_takeover_at, "referral": contact.referral,
        "createdAt": contact.created_at, "updatedAt": contact.updated_at,
    }


def direction_of(message: Message) -> str:
    if message.direction == Message.Direction.INBOUND:
        return "inbound"
    return "outbound" if message.source == Message.Source.CLOUD_API else "echo"


def message_json(message: Message, request) -> dict:
    media = getattr(message, "media", None) if message.media_id else None
    link = expires = None
    if media is not None and media.status == MessageMedia.Status.STORED:
        link = request.build_absolute_uri(
            reverse("whatsapp:media", args=[media_link_token(media)]))
        expires = timezone.now() + timedelta(seconds=settings.WHATSAPP_MEDIA_LINK_TTL_SECONDS)
    return {
        "id": message.pk, "wamid": message.wamid, "contactId": message.contact_id,
        "phoneNumberId": message.config.phone_number_id if message.config else None,
        "direction": direction_of(message), "source": message.source, "type": message.type,
        "text": message.body, "timestamp": message.timestamp, "status": message.status or None,
        "statusAt": message.status_at, "replyTo": message.reply_to_wamid or None,
        "referral": message.referral, "errors": message.errors,
        "editedAt": message.edited_at, "revokedAt": message.revoked_at,
        "content": message.raw.get(message.type) if message.type == "contacts" else None,
        "media": None if not message.media_id else {
            "mediaId": message.media_id,
            "status": media.status if media else None,
            "mimeType": (media.mime_type or None) if media else None,
            "size": media.size if media else None,
        },
        "mediaUrl": link, "mediaUrlExpiresAt": expires,
    }


