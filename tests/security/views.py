"""Tiny views for the permission building blocks of issue 14 (§3 roles, §5b staff API); mounted
only by the tests that use them (`pytest.mark.urls("tests.security.views")`)."""

from django.urls import include, path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.response import Response
from rest_framework.views import APIView

from organizations.permissions import (
    HasOrganization,
    HasStaffPermissions,
    IsOrganizationAdmin,
    is_org_admin,
    membership_role,
    required_permissions,
)


@api_view(["GET"])
@permission_classes([HasOrganization])
def whoami(request):
    return Response({"role": membership_role(request), "admin": is_org_admin(request)})


@api_view(["POST"])
@permission_classes([IsOrganizationAdmin])
def admin_only(request):
    return Response({"done": True})


@api_view(["POST"])
def undeclared(request):
    """No `permission_classes`: the API's default decides (admins only)."""
    return Response({"done": True})


@required_permissions("whatsapp.view_webhooklog")
@api_view(["GET"])
@permission_classes([HasStaffPermissions])
def staff_webhooks(request):
    return Response({"ok": True})


@api_view(["GET"])
@permission_classes([HasStaffPermissions])
def staff_undeclared(request):
    return Response({"ok": True})


@required_permissions("whatsapp.view_webhooklog", "whatsapp.change_webhooklog")
class StaffClassView(APIView):
    permission_classes = [HasStaffPermissions]

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [
    path("t/whoami", whoami),
    path("t/admin-only", admin_only),
    path("t/undeclared", undeclared),
    path("t/staff-webhooks", staff_webhooks),
    path("t/staff-undeclared", staff_undeclared),
    path("t/staff-class", StaffClassView.as_view()),
    path("", include("config.urls")),
]
