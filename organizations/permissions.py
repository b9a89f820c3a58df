"""Who may do what: the organization roles and the staff API.

Role matrix (`Membership.role`), the same for a session and a Bearer token (the token acts with
its user's role in the token's organization):

    action                                                   admin   member
    read connection status, check-connection, phone numbers   yes     yes
    list templates, read a send and its trail                 yes     yes
    send messages (within the sending rules)                  yes     yes
    hand a conversation back to automation                    yes     yes
    mint onboarding links (onboarding-url), signup callback   yes     no
    connect, disconnect, select the phone number              yes     no
    manage the sending policy                                 yes     no

(The sending policy has no tenant endpoint yet: support sets `SendPolicy` in the admin.)

Views enforce it with `IsOrganizationAdmin` (DRF; also the API's default permission class, so
an undeclared endpoint is for admins only) or `is_org_admin(request)` (pages, templates:
the context processor `organizations.context_processors.roles` gives `is_org_admin` and
`org_role`). Staff endpoints (`/api/admin/…`) use `HasStaffPermissions` and list the Django
permissions of the matching admin screens in `required_permissions`.
"""

import logging

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, permissions

from .models import Membership
from .services import membership_for_request, organization_for_request

logger = logging.getLogger(__name__)


def membership_role(request) -> str | None:
    """`"admin"`, `"member"`, or None when the caller acts in no organization."""
    membership = membership_for_request(request)
    return membership.role if membership else None


def is_org_admin(request) -> bool:
    return membership_role(request) == Membership.Role.ADMIN


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
            raise exceptions.NotAuthenticated()
        request.organization = organization
        return True


class IsOrganizationAdmin(HasOrganization):
    """`HasOrganization`, and the caller is an admin of that organization (403 otherwise)."""

    message = _("Only the organization's administrators can do this.")

    def has_permission(self, request, view) -> bool:
        return super().has_permission(request, view) and is_org_admin(request)


class HasStaffPermissions(permissions.BasePermission):
    """A staff user holding every Django permission the view lists in `required_permissions`
    (e.g. `["whatsapp.view_webhooklog"]`, the permissions of the matching admin screen), so the
    staff API answers exactly whom the admin answers.

    Fails closed: a view that lists no permission answers 403 to everyone, superusers included,
    so a new staff endpoint cannot ship open by forgetting the list. Function views declare
    them with `@required_permissions(...)` above `@api_view`.
    """

    message = _("You do not have permission to do this.")

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff and user.is_active):
            return False
        required = tuple(getattr(view, "required_permissions", None) or ())
        if not required:
            logger.warning("%s lists no required_permissions: denied", type(view).__name__)
            return False
        return user.has_perms(required)


def required_permissions(*perms: str):
    """Declares the Django permissions a staff view needs (see `HasStaffPermissions`).

    Goes on an `APIView` class, or above `@api_view` on a function view."""
    if not perms:
        raise ValueError("required_permissions needs at least one permission")

    def decorate(view):
        target = getattr(view, "cls", None) or view
        if not isinstance(target, type):
            raise TypeError("put @required_permissions above @api_view (or on an APIView class)")
        target.required_permissions = list(perms)
        return view

    return decorate
