"""A lead's data on request (LGPD) and Meta's data-deletion callback.

- `GET /api/v1/whatsapp/contacts/<id>/export`: everything held about one lead, as a JSON
  download; `POST …/contacts/<id>/erase`: schedules its erasure (202 with the request's state).
  Admins of the lead's organization only; another organization's lead is 404.
- `POST /api/v1/meta/data-deletion`: Meta's callback (form field `signed_request`, verified with
  META_APP_SECRET); answers `{url, confirmation_code}`, the url being the public status page.
What an erasure removes: whatsapp/conversations/privacy.py.
"""

import json
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from organizations.permissions import IsOrganizationAdmin
from whatsapp.conversations import privacy
from whatsapp.core.signed_request import SignedRequestError, signed_request_parse
from whatsapp.models import Contact, ErasureRequest

logger = logging.getLogger(__name__)


def _contact(request: Request, contact_id: int) -> Contact | None:
    if contact_id > 2**63 - 1:
        return None
    return Contact.objects.filter(organization=request.organization, pk=contact_id).first()


def _not_found() -> Response:
    # 404: not this organization's lead (or none); never say which.
    return Response({"error": _("Contact not found.")}, status=404)


@extend_schema(summary="Export everything held about one lead (JSON download, LGPD)")
@api_view(["GET"])
@permission_classes([IsOrganizationAdmin])
def contact_export(request: Request, contact_id: int) -> HttpResponse:
    contact = _contact(request, contact_id)
    if contact is None:
        return _not_found()
    data = privacy.contact_export(contact, user=request.user, request=request)
    response = HttpResponse(json.dumps(data, ensure_ascii=False, indent=2),
                            content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="lead-{contact.pk}.json"'
    return response


def erasure_json(erasure: ErasureRequest) -> dict:
    return {"id": erasure.pk, "state": erasure.state, "contactId": erasure.contact_id,
            "createdAt": erasure.created_at, "finishedAt": erasure.finished_at,
            "result": erasure.result}


@extend_schema(summary="Erase one lead and everything held about it (LGPD); runs in the "
                       "background")
@api_view(["POST"])
@permission_classes([IsOrganizationAdmin])
def contact_erase(request: Request, contact_id: int) -> Response:
    contact = _contact(request, contact_id)
    if contact is None:
        return _not_found()
    erasure = privacy.erasure_request(contact, user=request.user, request=request)
    return Response({"erasure": erasure_json(erasure)}, status=202)


@csrf_exempt
@require_POST
def meta_data_deletion(request: HttpRequest) -> JsonResponse:
    """Meta's data-deletion callback. Nothing is recorded unless the signature holds."""
    try:
        signed = signed_request_parse(request.POST.get("signed_request", ""),
                                      settings.META_APP_SECRET)
    except SignedRequestError as exc:
        logger.warning("Data-deletion callback refused: %s", exc)
        return JsonResponse({"error": _("Invalid or missing signed_request.")}, status=400)
    erasure = privacy.data_deletion_request(signed)
    url = request.build_absolute_uri(reverse("privacy-deletion-status",
                                             args=[erasure.confirmation_code]))
    return JsonResponse({"url": url, "confirmation_code": erasure.confirmation_code})
