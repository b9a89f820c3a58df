"""`GET /api/v1/whatsapp/usage?month=YYYY-MM`: what the organization's numbers cost in a month
(Meta's per-message pricing on our sends' statuses; whatsapp/sending/usage.py). Admins only."""

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from organizations.permissions import IsOrganizationAdmin
from whatsapp.sending.usage import month_of, month_parse, usage_report


class UsageQuerySerializer(serializers.Serializer):
    month = serializers.CharField(required=False, max_length=7,
                                  help_text="YYYY-MM (UTC calendar month); default: this month")

    def validate_month(self, value: str) -> str:
        if month_parse(value) is None:
            raise serializers.ValidationError(_("Give the month as YYYY-MM, e.g. 2026-12."))
        return value


@extend_schema(
    parameters=[OpenApiParameter("month", str, description="YYYY-MM (UTC); default: this month")],
    summary="Monthly WhatsApp usage per number: messages by pricing category and type, "
            "billable count, free service tier used",
)
@api_view(["GET"])
@permission_classes([IsOrganizationAdmin])
def usage(request: Request) -> Response:
    query = UsageQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    month = query.validated_data.get("month") or month_of(timezone.now())
    start, end = month_parse(month)
    numbers = usage_report(start=start, end=end, organization_id=request.organization.pk)
    return Response({
        "month": month,
        "numbers": [n.as_json() for n in numbers],
        "totals": {"messages": sum(n.messages for n in numbers),
                   "billable": sum(n.billable for n in numbers)},
    })
