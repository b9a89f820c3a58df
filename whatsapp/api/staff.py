"""Staff-only JSON (SPEC §4): failed webhooks and any organization's WhatsApp status.

Each endpoint answers exactly the staff users its admin screen answers (`HasStaffPermissions`):
failed webhooks need `whatsapp.view_webhooklog` (the failed-webhooks dashboard,
`WebhookLogAdmin.dashboard_view`), the status needs `whatsapp.view_connection` (the
connection pages, `ConnectionAdmin`). The Suporte group holds both.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from organizations.permissions import HasStaffPermissions, required_permissions
from organizations.services import organization_by_id_or_slug
from whatsapp.backoffice import dashboard
from whatsapp.backoffice.status import platform_status, whatsapp_status
from whatsapp.models import WebhookLog

PAGE_SIZE = 100


@extend_schema(summary="Failed and dead webhook deliveries (staff only)",
               parameters=[OpenApiParameter("status", str, enum=["failed", "dead"]),
                           OpenApiParameter("field", str)])
@required_permissions("whatsapp.view_webhooklog")
@api_view(["GET"])
@permission_classes([HasStaffPermissions])
def failed_webhooks(request: Request) -> Response:
    statuses = [WebhookLog.Status.FAILED, WebhookLog.Status.DEAD]
    wanted = request.query_params.get("status")
    if wanted:
        if wanted not in statuses:
            return Response({"error": "status must be failed or dead"}, status=400)
        statuses = [wanted]
    logs = WebhookLog.objects.filter(status__in=statuses).order_by("received_at")
    if request.query_params.get("field"):
        logs = logs.filter(fields__contains=[request.query_params["field"]])
    rows = [
        {"id": log.pk, "receivedAt": log.received_at, "status": log.status,
         "fields": log.fields, "organizationId": str(log.organization_id or "") or None,
         "attempts": log.attempts, "nextAttemptAt": log.next_attempt_at,
         "lastError": log.last_error}
        for log in logs[:PAGE_SIZE]
    ]
    return Response({"summary": dashboard.failed_webhooks(), "results": rows})


@extend_schema(summary="WhatsApp status of one organization, or of the platform (staff only)",
               parameters=[OpenApiParameter("org", str, description="organization id or slug")])
@required_permissions("whatsapp.view_connection")
@api_view(["GET"])
@permission_classes([HasStaffPermissions])
def status(request: Request) -> Response:
    value = request.query_params.get("org")
    if not value:
        return Response(platform_status())
    organization = organization_by_id_or_slug(value)
    if organization is None:
        return Response({"error": "organization not found"}, status=404)
    return Response(whatsapp_status(organization))
