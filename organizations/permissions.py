from rest_framework import permissions

from .services import organization_for_request


class HasOrganization(permissions.BasePermission):
    """The caller is authenticated and acts inside exactly one organization.

    Sets `request.organization`. An authenticated user without an organization is treated as
    unauthenticated (401 `Unauthorized - missing organization`), as the seeds specify.
    """

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        organization = organization_for_request(request)
        if organization is None:
            from rest_framework.exceptions import NotAuthenticated

            raise NotAuthenticated()
        request.organization = organization
        return True


class IsStaff(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
