"""Status summaries for staff and ops: a tenant's WhatsApp health and the platform's."""

from datetime import datetime

from django.db.models import Count

from whatsapp.models import Connection, Onboarding, WebhookLog


def webhook_counts(*, organization=None) -> dict[str, int]:
    qs = WebhookLog.objects.all()
    if organization is not None:
        qs = qs.filter(organization=organization)
    counts = dict(qs.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    return {status: counts.get(status, 0) for status in WebhookLog.Status.values}


def whatsapp_status(organization) -> dict:
    """What support needs to know about one organization's WhatsApp, in one JSON object."""
    connections = Connection.objects.filter(organization=organization).prefetch_related(
        "phone_numbers"
    )
    last_onboarding = Onboarding.objects.filter(organization=organization).first()
    return {
        "organization_id": str(organization.pk),
        "organization": organization.slug,
        "connections": [
            {
                "id": str(c.pk),
                "waba_id": c.waba_id,
                "status": c.status,
                "token_status": c.token_status,
                "token_expires_at": _iso(c.token_expires_at),
                "token_checked_at": _iso(c.token_checked_at),
                "connected_at": _iso(c.connected_at),
                "last_webhook_at": _iso(c.last_webhook_at),
                "phone_numbers": [
                    p.display_phone_number or p.phone_number_id for p in c.phone_numbers.all()
                ],
                "error": c.error_message,
            }
            for c in connections
        ],
        "last_onboarding": None
        if last_onboarding is None
        else {
            "status": last_onboarding.effective_status,
            "created_at": _iso(last_onboarding.created_at),
            "expires_at": _iso(last_onboarding.expires_at),
        },
        "webhooks": webhook_counts(organization=organization),
    }


def platform_status() -> dict:
    """The same, across tenants: backlog, dead letters, orphans, token health."""
    active = Connection.objects.active()
    webhooks = webhook_counts()
    return {
        "connections": dict(
            active.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
        ),
        "orphans": Connection.objects.orphans().count(),
        "tokens": dict(
            active.values_list("token_status")
            .annotate(n=Count("pk"))
            .values_list("token_status", "n")
        ),
        "webhooks": webhooks,
        # Derived from the counts above rather than a second query over the whole log.
        "webhook_backlog": sum(webhooks[s] for s in WebhookLog.BACKLOG),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
