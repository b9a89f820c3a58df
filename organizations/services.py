import uuid

from django.contrib.auth import get_user_model
from django.db import transaction

from .models import Membership, Organization

SESSION_ORGANIZATION_KEY = "active_organization_id"


def organization_for_request(request) -> Organization | None:
    """The organization a request acts in: the token's, or the session's active one."""
    organization = getattr(request, "organization", None)
    if organization is not None:
        return organization
    user = request.user
    if not user.is_authenticated:
        return None
    memberships = Membership.objects.filter(user=user).select_related("organization")
    wanted = request.session.get(SESSION_ORGANIZATION_KEY) if hasattr(request, "session") else None
    if wanted:
        membership = memberships.filter(organization_id=wanted).first()
        if membership:
            return membership.organization
    membership = memberships.order_by("created_at").first()
    return membership.organization if membership else None


@transaction.atomic
def organization_create(*, name: str, admin_email: str,
                        password: str | None) -> tuple[Organization, object]:
    """Creates an organization with its admin user (created, or reused by e-mail)."""
    User = get_user_model()
    organization = Organization.objects.create(name=name, slug=Organization.unique_slug_for(name))
    user = User.objects.filter(email__iexact=admin_email).first()
    if user is None:
        user = User.objects.create_user(username=admin_email, email=admin_email, password=password)
    elif password:
        user.set_password(password)
        user.save(update_fields=["password"])
    Membership.objects.create(user=user, organization=organization, role=Membership.Role.ADMIN)
    return organization, user


def organization_by_id(value: str) -> Organization | None:
    """An organization named by its UUID (e.g. a form's or query string's value); None when
    the value is not a UUID or names none."""
    try:
        pk = uuid.UUID(value)
    except ValueError:
        return None
    return Organization.objects.filter(pk=pk).first()


def organization_by_id_or_slug(value: str) -> Organization | None:
    """For commands and staff tools: an organization named by its UUID or its slug."""
    try:
        return Organization.objects.filter(pk=uuid.UUID(value)).first()
    except ValueError:
        return Organization.objects.filter(slug=value).first()
