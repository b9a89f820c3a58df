from typing import Any

from .models import AuditLog


def audit_record(
    *,
    action: str,
    organization=None,
    actor=None,
    actor_label: str = "",
    target: str = "",
    metadata: dict[str, Any] | None = None,
    request=None,
) -> AuditLog:
    """Appends one audit entry; the request (if any) gives the IP, user agent and actor."""
    ip, agent = None, ""
    if request is not None:
        ip = request.META.get("REMOTE_ADDR") or None
        agent = request.META.get("HTTP_USER_AGENT", "")[:300]
        if actor is None and getattr(request, "user", None) and request.user.is_authenticated:
            actor = request.user
    return AuditLog.objects.create(
        action=action,
        organization=organization,
        actor=actor,
        actor_label=actor_label or (actor.get_username() if actor else "system"),
        target=target,
        metadata=metadata or {},
        ip_address=ip,
        user_agent=agent,
    )
