"""Template context: the caller's role in the organization the page acts in (lazy: no query
unless a template reads it)."""

from .permissions import is_org_admin, membership_role


def roles(request) -> dict:
    return {
        "is_org_admin": lambda: is_org_admin(request),
        "org_role": lambda: membership_role(request),
    }
