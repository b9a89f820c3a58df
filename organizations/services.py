import uuid

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from audit.models import AuditLog
from audit.services import audit_record

from .models import ApiToken, Membership, Organization

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


def membership_for_request(request) -> Membership | None:
    """The caller's membership in the organization the request acts in (None: no organization).

    Bearer token: the token's user in the token's organization. Session: the user in the
    session's active organization (`organization_for_request`). Cached on the request.
    """
    if hasattr(request, "_org_membership"):
        return request._org_membership
    membership = None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        organization = organization_for_request(request)
        if organization is not None:
            membership = (Membership.objects.filter(user=user, organization=organization)
                          .select_related("organization").first())
    request._org_membership = membership
    return membership


def revoke_api_tokens(*, user, organization=None, reason: str, actor=None,
                      request=None) -> int:
    """Revokes `user`'s live API tokens (in `organization`, or in every organization), one
    `API_TOKENS_REVOKED` audit entry per organization that had any. Returns how many."""
    tokens = ApiToken.objects.active().filter(user=user)
    if organization is not None:
        tokens = tokens.filter(organization=organization)
    by_org: dict = {}
    for token in tokens.select_related("organization"):
        by_org.setdefault(token.organization, []).append(token)
    now = timezone.now()
    for org, revoked in by_org.items():
        ApiToken.objects.filter(pk__in=[t.pk for t in revoked]).update(revoked_at=now)
        audit_record(
            action=AuditLog.Action.API_TOKENS_REVOKED, organization=org, actor=actor,
            target=f"user:{user.pk}", request=request,
            metadata={"reason": reason, "user": user.get_username(),
                      "tokens": [t.token_prefix for t in revoked]},
        )
    return sum(len(revoked) for revoked in by_org.values())


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
