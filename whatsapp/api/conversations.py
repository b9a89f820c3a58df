"""The conversation read API for the qualification assistant (in or outside this monolith):
`/api/v1/whatsapp/contacts` (leads with every identity), `contacts/<id>/messages` (cursor
pages, `since`, filters by number and direction), `media/<link>` (a stored media file behind a
signed, expiring link) and `contacts/<id>/request-phone` (Meta's contact-information request).

Bearer token (or session) scoped to one organization; members and admins may read and ask
for a phone number. Another organization's objects answer 404, never saying whose they are.
"""

from datetime import datetime

from django.core import signing
from django.db.models import Q
from django.http import FileResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from organizations.permissions import HasOrganization
from whatsapp.conversations import media as media_room
from whatsapp.models import (
    Contact,
    ContactIdentity,
    Message,
    MessageMedia,
    OutboundMessage,
    PhoneNumber,
)
from whatsapp.sending import queue, rules

from .conversation_json import contact_json
from .conversation_json import message_json as conversation_message_json
from .conversation_schema import ContactsPage, ErrorOut, MessagesPage
from .sending import PHONE_REQUEST_TEXT, SEND_REFUSED_STATUS, message_json

CURSOR_SALT = "whatsapp.api.cursor"
# Facts about other messages or the lead, not conversation messages.
HIDDEN_TYPES = ("edit", "revoke", "system")
DIRECTIONS = {
    "inbound": Q(direction=Message.Direction.INBOUND),
    "outbound": Q(direction=Message.Direction.OUTBOUND, source=Message.Source.CLOUD_API),
    "echo": Q(direction=Message.Direction.OUTBOUND) & ~Q(source=Message.Source.CLOUD_API),
}


class PageQuery(serializers.Serializer):
    cursor = serializers.CharField(required=False, max_length=500,
                                   help_text="`nextCursor` of the previous page.")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=200, default=50)
    phoneNumberId = serializers.RegexField(r"^\d{1,32}$", required=False,
                                           help_text="Only this number's conversations.")

    def validate_cursor(self, value: str) -> dict:
        try:
            return signing.loads(value, salt=CURSOR_SALT)
        except signing.BadSignature as exc:
            raise serializers.ValidationError(
                gettext_lazy("Invalid cursor: use the nextCursor of the previous page.")) from exc


class ContactsQuery(PageQuery):
    search = serializers.CharField(required=False, max_length=100,
                                   help_text="Part of a name, username, phone or BSUID.")


class MessagesQuery(PageQuery):
    since = serializers.DateTimeField(required=False,
                                      help_text="Only messages at or after this ISO 8601 time.")
    direction = serializers.ChoiceField(
        required=False, choices=list(DIRECTIONS),
        help_text="inbound (the lead), outbound (sent through the API), echo (sent from the "
                  "WhatsApp Business app).")


class RequestPhoneSerializer(serializers.Serializer):
    text = serializers.CharField(required=False, max_length=1024,
                                 help_text="Shown above Meta's share button.")
    phoneNumberId = serializers.RegexField(r"^\d{1,32}$", required=False)
    automated = serializers.BooleanField(required=False, default=False)
    idempotencyKey = serializers.CharField(required=False, max_length=255)


def _number(request: Request, phone_number_id: str | None) -> PhoneNumber | None:
    """The organization's number, or NotFound-style None when it is not one of its numbers."""
    return PhoneNumber.objects.filter(organization=request.organization,
                                      phone_number_id=phone_number_id).first()


def _not_found(message: str) -> Response:
    return Response({"error": message}, status=404)


def _page(rows: list, limit: int, key) -> tuple[list, str | None]:
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (signing.dumps(key(rows[-1]), salt=CURSOR_SALT) if more and rows else None)


@extend_schema(parameters=[ContactsQuery],
               responses={200: ContactsPage, 400: ErrorOut, 404: ErrorOut},
               summary="The organization's leads with every "
               "identity (phone, BSUID, username), newest first, in cursor pages")
@api_view(["GET"])
@permission_classes([HasOrganization])
def contacts_list(request: Request) -> Response:
    query = ContactsQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    data = query.validated_data
    contacts = Contact.objects.filter(organization=request.organization)
    if data.get("phoneNumberId"):
        number = _number(request, data["phoneNumberId"])
        if number is None:
            return _not_found(_("Phone number not found."))
        contacts = contacts.filter(pk__in=Message.objects.filter(config=number)
                                   .values("contact_id"))
    if data.get("search"):
        term = data["search"].strip()
        contacts = contacts.filter(
            Q(profile_name__icontains=term) | Q(saved_name__icontains=term)
            | Q(username__icontains=term)
            | Q(pk__in=ContactIdentity.objects.filter(organization=request.organization,
                                                      value__icontains=term)
                .values("contact_id")))
    if data.get("cursor"):
        contacts = contacts.filter(pk__lt=data["cursor"].get("id", 0))
    rows = list(contacts.prefetch_related("identities").order_by("-pk")[:data["limit"] + 1])
    rows, cursor = _page(rows, data["limit"], lambda c: {"id": c.pk})
    return Response({"contacts": [contact_json(c) for c in rows], "nextCursor": cursor})


@extend_schema(parameters=[MessagesQuery],
               responses={200: MessagesPage, 400: ErrorOut, 404: ErrorOut},
               summary="One lead's messages, oldest first, in "
               "cursor pages; `since`, number and direction filters; media as expiring links")
@api_view(["GET"])
@permission_classes([HasOrganization])
def contact_messages(request: Request, contact_id: int) -> Response:
    contact = Contact.objects.filter(organization=request.organization, pk=contact_id).first()
    if contact is None:
        return _not_found(_("Contact not found."))
    query = MessagesQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    data = query.validated_data
    messages = (Message.objects.filter(organization=request.organization, contact=contact)
                .exclude(type__in=HIDDEN_TYPES).select_related("config", "media"))
    if data.get("phoneNumberId"):
        number = _number(request, data["phoneNumberId"])
        if number is None:
            return _not_found(_("Phone number not found."))
        messages = messages.filter(config=number)
    if data.get("direction"):
        messages = messages.filter(DIRECTIONS[data["direction"]])
    if data.get("since"):
        messages = messages.filter(timestamp__gte=data["since"])
    if data.get("cursor"):
        after = data["cursor"]
        try:
            at, pk = datetime.fromisoformat(after["t"]), int(after["i"])
        except (KeyError, TypeError, ValueError):
            return Response({"error": _("Invalid cursor: use the nextCursor of the previous "
                                        "page.")}, status=400)
        messages = messages.filter(Q(timestamp__gt=at) | Q(timestamp=at, pk__gt=pk))
    rows = list(messages.order_by("timestamp", "pk")[:data["limit"] + 1])
    rows, cursor = _page(rows, data["limit"],
                         lambda m: {"t": m.timestamp.isoformat(), "i": m.pk})
    return Response({"contact": contact_json(contact),
                     "messages": [conversation_message_json(m, request) for m in rows],
                     "nextCursor": cursor})


@extend_schema(responses={(200, "application/octet-stream"): OpenApiResponse(
                   description="The media file"),
                          403: OpenApiResponse(description="Not a link of ours"),
                          404: OpenApiResponse(description="Not this organization's media"),
                          410: OpenApiResponse(description="Link expired or file removed")},
               summary="A stored media file, through the expiring link given as `mediaUrl`")
@api_view(["GET"])
@permission_classes([HasOrganization])
def media_file(request: Request, token: str):
    try:
        organization_id, media_pk = media_room.media_link_target(token)
    except media_room.LinkExpired:
        return Response({"error": _("This media link has expired; read the message again for "
                                    "a new one.")}, status=410)
    except media_room.LinkInvalid:
        return Response({"error": _("Invalid media link.")}, status=403)
    media = MessageMedia.objects.filter(organization=request.organization,
                                        pk=media_pk).first()
    if media is None or organization_id != str(request.organization.pk):
        return _not_found(_("Media not found."))
    if media.status != MessageMedia.Status.STORED or not media.file:
        return Response({"error": _("This media file is no longer available.")}, status=410)
    response = FileResponse(media_room.media_storage().open(media.file, "rb"),
                            content_type=media.mime_type)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox"
    return response


@extend_schema(request=RequestPhoneSerializer,
               responses={202: OpenApiResponse(description="Queued: {message}"), 404: ErrorOut,
                          409: ErrorOut},
               summary="Ask a lead for its phone number "
               "(Meta's contact-information request; works for username-only leads)")
@api_view(["POST"])
@permission_classes([HasOrganization])
def contact_request_phone(request: Request, contact_id: int) -> Response:
    serializer = RequestPhoneSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    send = rules.SendRequest(
        kind=OutboundMessage.Kind.REQUEST_CONTACT_INFO, contact_id=contact_id,
        phone_number_id=data.get("phoneNumberId", ""),
        text=data.get("text") or str(PHONE_REQUEST_TEXT), automated=data["automated"],
        idempotency_key=(data.get("idempotencyKey")
                         or request.headers.get("Idempotency-Key", "")[:255]))
    try:
        message, created = queue.outbound_queue(organization=request.organization,
                                                request=send, user=request.user,
                                                token=request.auth)
    except rules.SendRefused as exc:
        return Response({"error": exc.message, "code": exc.code},
                        status=SEND_REFUSED_STATUS.get(exc.code, 400))
    return Response({"message": message_json(message)}, status=202 if created else 200)

