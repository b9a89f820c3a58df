import logging

from django.conf import settings
from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from . import services, webhooks
from .serializers import OnboardingUrlQuerySerializer, OnboardingUrlSerializer
from .signatures import is_valid_signature

logger = logging.getLogger(__name__)


@extend_schema(
    parameters=[OnboardingUrlQuerySerializer],
    responses={200: OnboardingUrlSerializer},
    summary="Hosted Embedded Signup link with a fresh tracking code",
)
@api_view(["GET"])
def onboarding_url(request: Request) -> Response:
    query = OnboardingUrlQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    onboarding = services.onboarding_start(
        organization=request.organization,
        user=request.user,
        redirect_path=query.validated_data["redirectPath"],
    )
    return Response(
        {
            "url": services.onboarding_url(onboarding),
            "trackingCode": str(onboarding.tracking_code),
            "expiresAt": onboarding.expires_at,
        }
    )


@extend_schema(summary="Connection state of the caller's organization, for polling")
@api_view(["GET"])
def check_connection(request: Request) -> Response:
    return Response(services.connection_status_for(request.organization))


@csrf_exempt
@require_http_methods(["GET", "POST"])
def webhook(request: HttpRequest) -> HttpResponse:
    """Meta's webhook: verify, store, enqueue, return. Nothing else happens in the request."""
    if request.method == "GET":
        return _verification_handshake(request)

    limit = settings.WHATSAPP_WEBHOOK_MAX_BYTES
    if int(request.META.get("CONTENT_LENGTH") or 0) > limit:
        # 413: bigger than any documented delivery (3 MB history chunks).
        return JsonResponse({"error": "Payload too large"}, status=413)
    body = request.body
    if len(body) > limit:
        return JsonResponse({"error": "Payload too large"}, status=413)
    if not is_valid_signature(body, request.headers.get("X-Hub-Signature-256", ""),
                              settings.META_APP_SECRET):
        webhooks.count_invalid_signature(request.META.get("REMOTE_ADDR", ""))
        # 403: unsigned or forged; nothing is stored or processed.
        return JsonResponse({"error": "Invalid signature"}, status=403)
    try:
        log = webhooks.webhook_store(body=body, headers=request.headers)
    except DatabaseError:
        logger.exception("Could not store a signed webhook delivery")
        # 503: not stored, so Meta must retry it.
        return JsonResponse({"error": "Temporarily unavailable"}, status=503)
    transaction.on_commit(lambda: webhooks.webhook_enqueue(log.pk))
    # 200: stored durably; processing continues in Celery.
    return JsonResponse({"received": True})


def _verification_handshake(request: HttpRequest) -> HttpResponse:
    token = settings.META_WEBHOOK_VERIFY_TOKEN
    if (
        token
        and request.GET.get("hub.mode") == "subscribe"
        and request.GET.get("hub.verify_token") == token
    ):
        # 200 with the bare challenge, as Meta's handshake expects.
        return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
    return HttpResponse("Forbidden", status=403, content_type="text/plain")
