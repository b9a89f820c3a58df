"""`POST /api/v1/whatsapp/conversations/<id>/hand-back`: a conversation a person took over
from the phone app goes back to automation (whatsapp/conversations/takeover.py).

Bearer token (or session) scoped to one organization; members and admins alike (they answer
leads). The id is the lead's contact id; another organization's contact answers 404.
"""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from organizations.permissions import HasOrganization
from whatsapp.conversations.takeover import takeover_hand_back
from whatsapp.models import Contact


def takeover_json(contact: Contact) -> dict:
    return {"contactId": contact.pk, "humanTakeover": contact.taken_over,
            "humanTakeoverAt": contact.human_takeover_at, "handedBackAt": contact.handed_back_at}


@extend_schema(
    request=None,
    responses={200: inline_serializer("HandBack", {
        "conversation": inline_serializer("ConversationTakeover", {
            "contactId": serializers.IntegerField(),
            "humanTakeover": serializers.BooleanField(),
            "humanTakeoverAt": serializers.DateTimeField(allow_null=True),
            "handedBackAt": serializers.DateTimeField(allow_null=True),
        })})},
    summary="Hand a conversation a person took over back to automation "
            "(emits conversation.handed_back)")
@api_view(["POST"])
@permission_classes([HasOrganization])
def hand_back(request: Request, contact_id: int) -> Response:
    was = (Contact.objects.filter(organization=request.organization, pk=contact_id)
           .only("human_takeover_at", "handed_back_at").first() if contact_id < 2**63 else None)
    if was is None:
        # 404: not this organization's conversation (never say whose it is).
        return Response({"error": str(_("Conversation not found."))}, status=404)
    if not was.taken_over:
        return Response({"error": str(_("No person is handling this conversation: it is already "
                                        "with the automation.")),
                         "code": "not_taken_over"}, status=409)
    contact = takeover_hand_back(organization_id=request.organization.pk, contact_id=contact_id,
                                 user=request.user, request=request)
    return Response({"conversation": takeover_json(contact)})
