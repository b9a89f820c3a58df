import logging

from django.conf import settings
from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from organizations.permissions import HasOrganization, IsOrganizationAdmin
from whatsapp.core import lanes, metrics
from whatsapp.models import AnalyticsEvent, Connection, PhoneNumber
from whatsapp.onboarding import attribution, connections, retries, signup
from whatsapp.onboarding.analytics import analytics_record
from whatsapp.onboarding.signup import OnboardingError
from whatsapp.webhooks import intake
from whatsapp.webhooks.signatures import is_valid_signature

from .failures import FAILURES, failure_message
from .presenters import connection_status_for, phone_number_json
from .serializers import (
    ConnectionRetrySerializer,
    DisconnectSerializer,
    EmbeddedSignupCallbackSerializer,
    OnboardingUrlQuerySerializer,
    OnboardingUrlSerializer,
    SelectPhoneSerializer,
)

logger = logging.getLogger(__name__)

# Roles (organizations.permissions' matrix): `HasOrganization` for what members may also do
# (read the status and the numbers), `IsOrganizationAdmin` for whatever connects, disconnects
# or picks the number. Each view says which; the default (undeclared) is admins only.


@extend_schema(
    parameters=[OnboardingUrlQuerySerializer],
    responses={200: OnboardingUrlSerializer},
    summary="Hosted Embedded Signup link with a fresh tracking code",
)
@api_view(["GET"])
@permission_classes([IsOrganizationAdmin])
def onboarding_url(request: Request) -> Response:
    query = OnboardingUrlQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    if not signup.signup_enabled_for(request.organization):
        # 403: the rollout flag is off for this organization (or killed globally).
        return Response({"error": _("Connecting WhatsApp is temporarily unavailable. "
                                    "Please try again later.")}, status=403)
    onboarding = signup.onboarding_start(
        organization=request.organization,
        user=request.user,
        redirect_path=query.validated_data["redirectPath"],
    )
    analytics_record(name=AnalyticsEvent.Name.SIGNUP_STARTED,
                     dedupe_key=f"started:{onboarding.pk}", organization=request.organization,
                     user=request.user)
    return Response(
        {
            "url": signup.onboarding_url(onboarding),
            "trackingCode": str(onboarding.tracking_code),
            "expiresAt": onboarding.expires_at,
        }
    )


@extend_schema(summary="Connection state of the caller's organization, for polling")
@api_view(["GET"])
@permission_classes([HasOrganization])
def check_connection(request: Request) -> Response:
    return Response(connection_status_for(request.organization))


@extend_schema(request=EmbeddedSignupCallbackSerializer,
               summary="Relay of the Embedded Signup popup's outcome (finish, cancel, error)")
@api_view(["POST"])
@permission_classes([IsOrganizationAdmin])
def embedded_signup_callback(request: Request) -> Response:
    data = _valid(EmbeddedSignupCallbackSerializer, request.data)
    try:
        if data["event"] in ("CANCEL", "ERROR"):
            onboarding = signup.onboarding_browser_outcome(
                organization=request.organization, state=str(data["state"]),
                event=data["event"], current_step=data.get("currentStep", ""),
                error_code=data.get("errorCode", ""), error_message=data.get("errorMessage", ""),
                session_id=data.get("sessionId", ""),
            )
            return Response({"success": True, "status": onboarding.status})
        finished = signup.onboarding_finished_by_browser(organization=request.organization,
                                                         state=str(data["state"]))
        if finished is not None:
            return _finished_answer(finished)
        connection = attribution.connection_from_browser_finish(
            organization=request.organization, user=request.user, state=str(data["state"]),
            code=data["code"], event=data["event"], waba_id=data.get("wabaId", ""),
            phone_number_id=data.get("phoneNumberId", ""),
            business_id=data.get("businessId", ""), waac_id=data.get("waacId", ""),
            request=request,
        )
    except OnboardingError as exc:
        signup.onboarding_fail(organization=request.organization, state=str(data["state"]),
                               error=exc)
        return _onboarding_error(exc)
    return Response({"success": True, "connection_id": str(connection.pk),
                     "status": connection.status})


@extend_schema(summary="Full status of the caller's WhatsApp connection (never the token)")
@api_view(["GET"])
@permission_classes([HasOrganization])
def connection_status(request: Request) -> Response:
    return Response(connection_status_for(request.organization))


@extend_schema(request=DisconnectSerializer, summary="Disconnect the organization's WhatsApp")
@api_view(["POST"])
@permission_classes([IsOrganizationAdmin])
def connection_disconnect(request: Request) -> Response:
    data = _valid(DisconnectSerializer, request.data)
    try:
        connection = connections.connection_disconnect_by_user(
            organization=request.organization, reason=data["reason"] or "user_request",
            request=request, connection_id=data["connectionId"],
        )
    except OnboardingError as exc:
        return _onboarding_error(exc)
    return Response({"success": True, "status": connection.status,
                     "connectionId": str(connection.pk)})


@extend_schema(request=ConnectionRetrySerializer,
               summary="Run a failed (or stalled) connection's setup again")
@api_view(["POST"])
@permission_classes([IsOrganizationAdmin])
def connection_retry(request: Request) -> Response:
    data = _valid(ConnectionRetrySerializer, request.data)
    try:
        retries.pipeline_retry_by_tenant(organization=request.organization,
                                         connection_id=data["connectionId"], request=request)
    except OnboardingError as exc:
        return _onboarding_error(exc)
    return Response(connection_status_for(request.organization), status=202)


@extend_schema(summary="The organization's phone numbers")
@api_view(["GET"])
@permission_classes([HasOrganization])
def phone_numbers(request: Request) -> Response:
    phone_numbers = (PhoneNumber.objects.filter(organization=request.organization)
               .exclude(connection__status=Connection.Status.DISCONNECTED)
               .select_related("connection"))
    return Response({"phoneNumbers": [phone_number_json(c) for c in phone_numbers]})


@extend_schema(request=SelectPhoneSerializer,
               summary="Choose which number of the WABA to use (several numbers)")
@api_view(["POST"])
@permission_classes([IsOrganizationAdmin])
def select_phone(request: Request) -> Response:
    data = _valid(SelectPhoneSerializer, request.data)
    try:
        config = connections.connection_select_phone(
            organization=request.organization, waba_id=data["wabaId"],
            phone_number_id=data["phoneId"],
        )
    except OnboardingError as exc:
        return _onboarding_error(exc)
    return Response({"success": True, "phoneNumber": phone_number_json(config)})


# Each onboarding error code answers one status, chosen here (the domain only names the error).
ONBOARDING_ERROR_STATUS = {
    # 404: unknown, or another organization's (never say whose it is).
    "unknown_session": 404,
    "connection_not_found": 404,
    "number_not_found": 404,
    # 410: the tracking code existed but its time is over; the page offers a new one.
    "session_expired": 410,
    # 409: the request conflicts with the current state (finished session, WABA taken).
    "session_finished": 409,
    "waba_taken": 409,
    "not_orphan": 409,
    "not_resumable": 409,
    # 400: Meta refused the authorization code the browser relayed (expired, reused).
    "code_refused": 400,
    # 403: Meta's token does not prove the caller owns the WABA it reported.
    "waba_not_granted": 403,
    # 502: Meta is unavailable; the browser may retry.
    "meta_unavailable": 502,
}


def _onboarding_error(exc: OnboardingError) -> Response:
    # A failure the tenant can act on reads as its pt-BR text with the code, never Meta's.
    message = failure_message(exc.code) if exc.code in FAILURES else exc.message
    return Response({"error": message, "code": exc.code},
                    status=ONBOARDING_ERROR_STATUS.get(exc.code, 400))


def _finished_answer(onboarding) -> Response:
    """409 (README: already finished), with the stored outcome: what the first relay did."""
    connection = (Connection.objects.filter(onboarding=onboarding,
                                            organization=onboarding.organization)
                  .order_by("-created_at").first())
    return Response({"error": _("This onboarding session is already finished."),
                     "code": "session_finished",
                     "connection_id": str(connection.pk) if connection else None,
                     "status": connection.status if connection else onboarding.status},
                    status=409)


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


WEBHOOK_RECEIVED = b'{"received": true}'


@csrf_exempt
@require_http_methods(["GET", "POST"])
def webhook(request: HttpRequest) -> HttpResponse:
    """Meta's webhook: verify, store, enqueue, return. Nothing else happens in the request."""
    if request.method == "GET":
        return _verification_handshake(request)

    limit = settings.WHATSAPP_WEBHOOK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        # 400: a malformed Content-Length is not a delivery we can read.
        metrics.webhook_request("bad_request")
        return JsonResponse({"error": "Invalid Content-Length"}, status=400)
    if declared > limit:
        # 413: bigger than any documented delivery (3 MB history chunks).
        metrics.webhook_request("too_large")
        return JsonResponse({"error": "Payload too large"}, status=413)
    if not declared and _is_chunked(request):
        if not request.META.get("wsgi.input_terminated"):
            # 411: this server cannot read a chunked body (Django only reads Content-Length
            # bytes), so the signature could not be checked: not forged, nothing counted.
            metrics.webhook_request("length_required")
            return JsonResponse({"error": "Length Required: send Content-Length"}, status=411)
        # The server (gunicorn) decodes the chunks and ends the stream: read up to the limit.
        body = request.META["wsgi.input"].read(limit + 1)
    else:
        body = request.body
    if len(body) > limit:
        metrics.webhook_request("too_large")
        return JsonResponse({"error": "Payload too large"}, status=413)
    if not is_valid_signature(body, request.headers.get("X-Hub-Signature-256", ""),
                              settings.META_APP_SECRET):
        if intake.count_invalid_signature(request.META.get("REMOTE_ADDR", "")):
            # 429: this IP keeps sending forged requests; only invalid requests get this.
            metrics.webhook_request("rate_limited")
            return JsonResponse({"error": "Too many invalid requests"}, status=429,
                                headers={"Retry-After": "60"})
        # 403: unsigned or forged; nothing is stored or processed.
        metrics.webhook_request("invalid_signature")
        return JsonResponse({"error": "Invalid signature"}, status=403)
    try:
        fields = lanes.fields_in(body)  # the delivery's lane (whatsapp/core/lanes.py)
        log_id = intake.webhook_store(body=body, headers=intake.kept_headers(request.META),
                                      fields=fields)
    except DatabaseError:
        logger.exception("Could not store a signed webhook delivery")
        # 503: not stored, so Meta must retry it.
        metrics.webhook_request("unavailable")
        return JsonResponse({"error": "Temporarily unavailable"}, status=503)
    metrics.delivery_stored(fields)
    transaction.on_commit(lambda: intake.webhook_announce(log_id, body=body, fields=fields))
    # 200: stored durably; processing continues in Celery.
    return HttpResponse(WEBHOOK_RECEIVED, content_type="application/json")


def _is_chunked(request: HttpRequest) -> bool:
    return "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()


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
