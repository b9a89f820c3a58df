"""One error shape for the whole JSON API: `{"error": "<message>", "details": {...}?}`."""

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework import exceptions, permissions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

# The seeds fix this exact body for an unauthenticated or organization-less caller.
UNAUTHORIZED_BODY = {"error": "Unauthorized - missing organization"}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response.data = dict(UNAUTHORIZED_BODY)
        return response
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"error": _first_message(exc.detail), "details": exc.detail}
        return response
    detail = getattr(exc, "detail", None)
    response.data = {"error": str(detail) if detail else _("Invalid request.")}
    if response.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        response.data["error"] = str(detail)
    return response


def _first_message(detail: object) -> str:
    if isinstance(detail, dict):
        for value in detail.values():
            return _first_message(value)
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


class SchemaAccess(permissions.BasePermission):
    """`/api/schema/`: anyone when `API_SCHEMA_PUBLIC` (development default), else staff only
    (production default: the schema maps every endpoint and parameter for an attacker)."""

    def has_permission(self, request, view) -> bool:
        if settings.API_SCHEMA_PUBLIC:
            return True
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
