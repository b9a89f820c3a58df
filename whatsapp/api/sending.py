"""`/api/v1/whatsapp/messages` and `/templates`: queue a send, read it back, list templates.

Same style as whatsapp/views.py: Bearer token (or session) scoped to one organization,
errors as `{"error": …}` (plus a machine-readable `code` for refusals). Members and admins
alike may send (within the sending rules), read a send and list templates; the sending policy
(`SendPolicy`) has no tenant endpoint (support sets it in the admin).
"""

import re

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from organizations.permissions import HasOrganization
from whatsapp.models import MessageTemplate, OutboundMessage
from whatsapp.sending import queue, rules

PARAMETER_NAME = re.compile(r"^[a-z0-9_]{1,64}$")


class HeaderMediaSerializer(serializers.Serializer):
    """A media header: an uploaded media id or an https link (documents may carry a name)."""

    type = serializers.ChoiceField(choices=["image", "video", "document"])
    id = serializers.RegexField(r"^[0-9]{1,32}$", required=False,
                                error_messages={"invalid": _("A media id is digits only.")})
    link = serializers.URLField(required=False, max_length=2000)
    filename = serializers.CharField(required=False, max_length=240)

    def validate(self, attrs: dict) -> dict:
        if bool(attrs.get("id")) == bool(attrs.get("link")):
            raise serializers.ValidationError(
                _("Give the header media's id or its link (one of the two)."))
        if attrs.get("link") and not attrs["link"].lower().startswith("https://"):
            raise serializers.ValidationError({"link": _("The media link must use https.")})
        if attrs.get("filename") and attrs["type"] != "document":
            raise serializers.ValidationError(
                {"filename": _("Only a document header has a file name.")})
        return attrs


class ButtonParameterSerializer(serializers.Serializer):
    """A template button's parameter: a quick reply's payload, or a URL button's suffix."""

    index = serializers.IntegerField(min_value=0, max_value=9)
    type = serializers.ChoiceField(choices=["quick_reply", "url"])
    payload = serializers.CharField(required=False, max_length=256)
    text = serializers.CharField(required=False, max_length=2000)

    def validate(self, attrs: dict) -> dict:
        if attrs["type"] == "quick_reply" and (not attrs.get("payload") or attrs.get("text")):
            raise serializers.ValidationError(
                _("A quick reply button takes its “payload” (and no text)."))
        if attrs["type"] == "url" and (not attrs.get("text") or attrs.get("payload")):
            raise serializers.ValidationError(
                _("A URL button takes the “text” that completes its URL (and no payload)."))
        return attrs


class TemplateRefSerializer(serializers.Serializer):
    use = serializers.SlugField(required=False, max_length=64,
                                help_text="A use mapped to a template (confirmacao, lembrete…).")
    name = serializers.CharField(required=False, max_length=512)
    language = serializers.CharField(required=False, max_length=16)
    parameters = serializers.ListField(child=serializers.CharField(max_length=1024),
                                       required=False, default=list, max_length=50)
    headerParameters = serializers.ListField(child=serializers.CharField(max_length=1024),
                                             required=False, default=list, max_length=5)
    namedParameters = serializers.DictField(
        child=serializers.CharField(max_length=1024), required=False, default=dict,
        help_text="For templates with named parameters ({{first_name}}): name → value.")
    header = HeaderMediaSerializer(required=False)
    buttons = ButtonParameterSerializer(many=True, required=False, default=list, max_length=10)

    def validate_namedParameters(self, value: dict) -> dict:  # noqa: N802 (the API's name)
        if len(value) > 50:
            raise serializers.ValidationError(_("At most 50 named parameters."))
        bad = sorted(k for k in value if not PARAMETER_NAME.match(k))
        if bad:
            raise serializers.ValidationError(
                _("Parameter names are lowercase letters, digits and _: %(names)s.")
                % {"names": ", ".join(bad[:5])})
        return value

    def validate_buttons(self, value: list) -> list:
        indexes = [b["index"] for b in value]
        if len(indexes) != len(set(indexes)):
            raise serializers.ValidationError(_("Each button index may appear only once."))
        return value

    def validate(self, attrs: dict) -> dict:
        if not attrs.get("use") and not (attrs.get("name") and attrs.get("language")):
            raise serializers.ValidationError(
                _("Give the template's use, or its name and language."))
        if attrs.get("namedParameters") and (attrs.get("parameters")
                                             or attrs.get("headerParameters")):
            raise serializers.ValidationError(
                _("Send either numbered parameters or named parameters, not both."))
        return attrs


# What a username-only lead reads above Meta's "share contact info" button by default.
PHONE_REQUEST_TEXT = _("To continue, please share your phone number: tap the button below.")


class SendMessageSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=OutboundMessage.Kind.values)
    to = serializers.RegexField(r"^\+?[0-9 ().-]{8,24}$", required=False)
    contactId = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    phoneNumberId = serializers.RegexField(r"^\d{1,32}$", required=False)
    text = serializers.CharField(required=False, max_length=4096)
    template = TemplateRefSerializer(required=False)
    automated = serializers.BooleanField(required=False, default=False)
    idempotencyKey = serializers.CharField(required=False, max_length=255)

    def validate(self, attrs: dict) -> dict:
        if not attrs.get("to") and not attrs.get("contactId"):
            raise serializers.ValidationError({"to": _("Give a recipient (to or contactId).")})
        if attrs["type"] == OutboundMessage.Kind.REQUEST_CONTACT_INFO and not attrs.get("text"):
            attrs["text"] = str(PHONE_REQUEST_TEXT)
        if attrs["type"] == OutboundMessage.Kind.TEXT and not attrs.get("text"):
            raise serializers.ValidationError({"text": _("A text message needs its text.")})
        if attrs["type"] == OutboundMessage.Kind.TEMPLATE and not attrs.get("template"):
            raise serializers.ValidationError({"template": _("A template message needs its "
                                                             "template.")})
        return attrs

    def to_request(self, idempotency_key: str) -> rules.SendRequest:
        data = self.validated_data
        template = data.get("template") or {}
        return rules.SendRequest(
            kind=data["type"], to=data.get("to", ""), contact_id=data.get("contactId"),
            phone_number_id=data.get("phoneNumberId", ""), text=data.get("text", ""),
            template_name=template.get("name", ""), template_language=template.get("language", ""),
            use=template.get("use", ""), body_parameters=template.get("parameters", []),
            header_parameters=template.get("headerParameters", []),
            named_parameters=template.get("namedParameters", {}),
            header_media=dict(template.get("header") or {}),
            buttons=[dict(b) for b in template.get("buttons", [])],
            automated=data["automated"],
            idempotency_key=data.get("idempotencyKey") or idempotency_key,
        )


# Each refusal code answers one status, chosen here (the sending rules only name the refusal).
SEND_REFUSED_STATUS = {
    # 400: Meta would refuse this template send (132xxx); say why now.
    "invalid_template": 400,
    # 403: sending is off here (environment, organization, kill switch) or the recipient is
    # not on this environment's test allowlist.
    "sending_disabled": 403,
    "recipient_not_allowed": 403,
    # 404: not this organization's number or contact (never say whose it is).
    "not_found": 404,
    # 409: the conversation's or connection's state forbids it (window closed, a person took
    # over, no connected number, no phone number to send to).
    "window_closed": 409,
    # a template Meta moved to MARKETING waits for a person's confirmation (automation only).
    "template_category_unconfirmed": 409,
    "human_takeover": 409,
    "not_connected": 409,
    "no_phone": 409,
    # 422: an idempotency key names one request; reusing it for another would drop that one.
    "idempotency_key_reused": 422,
}


def message_json(message: OutboundMessage, *, events: bool = False) -> dict:
    data = {
        "id": str(message.pk), "status": message.status, "reason": message.status_reason,
        "type": message.kind, "to": message.to,
        "recipient": message.recipient_user_id or None, "contactId": message.contact_id,
        "phoneNumberId": message.config.phone_number_id,
        "template": ({"name": message.template_name, "language": message.template_language,
                      "use": message.use} if message.kind == OutboundMessage.Kind.TEMPLATE
                     else None),
        "automated": message.automated, "idempotencyKey": message.idempotency_key or None,
        "queuedBy": message.actor, "wamid": message.wamid, "attempts": message.attempts,
        "errorCode": message.error_code, "errors": message.errors,
        "createdAt": message.created_at, "acceptedAt": message.accepted_at,
        "sentAt": message.sent_at, "deliveredAt": message.delivered_at,
        "readAt": message.read_at, "failedAt": message.failed_at,
    }
    if events:
        data["events"] = [{"event": e.event, "at": e.at, "detail": e.detail}
                          for e in message.events.all()]
    return data


@extend_schema(request=SendMessageSerializer,
               summary="Queue a WhatsApp message (template, or text inside the 24 h window)")
@api_view(["POST"])
@permission_classes([HasOrganization])
def messages_create(request: Request) -> Response:
    serializer = SendMessageSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    try:
        message, created = queue.outbound_queue(
            organization=request.organization,
            request=serializer.to_request(request.headers.get("Idempotency-Key", "")[:255]),
            user=request.user, token=request.auth,
        )
    except rules.SendRefused as exc:
        return Response({"error": exc.message, "code": exc.code},
                        status=SEND_REFUSED_STATUS.get(exc.code, 400))
    if not created:
        # 200: the same idempotency key was sent before; this is that message, not a new one.
        return Response({"message": message_json(message)}, headers={"Idempotent-Replayed": "true"})
    # 202: queued; the send happens in the background (poll the message or wait for statuses).
    return Response({"message": message_json(message)}, status=202)


@extend_schema(summary="One queued message with its audit trail (statuses, errors)")
@api_view(["GET"])
@permission_classes([HasOrganization])
def message_detail(request: Request, message_id) -> Response:
    message = (OutboundMessage.objects.select_related("config")
               .filter(organization=request.organization, pk=message_id).first())
    if message is None:
        # 404: not this organization's (or no such message); never say which.
        return Response({"error": str(_("Message not found."))}, status=404)
    return Response({"message": message_json(message, events=True)})


@extend_schema(summary="The organization's message templates and their status")
@api_view(["GET"])
@permission_classes([HasOrganization])
def templates_list(request: Request) -> Response:
    templates = MessageTemplate.objects.filter(organization=request.organization)
    return Response({"templates": [
        {"name": t.name, "language": t.language, "category": t.category, "status": t.status,
         "use": t.use or None, "bodyParameters": t.body_parameter_count,
         "headerParameters": t.header_parameter_count, "sendable": t.is_sendable,
         "parameterFormat": t.parameter_format or None,
         "previousCategory": t.previous_category or None,
         "categoryConfirmationRequired": t.category_confirmation_required,
         "qualityScore": t.quality_score or None}
        for t in templates
    ]})
