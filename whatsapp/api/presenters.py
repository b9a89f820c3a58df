"""What the tenant's pages and the JSON API show about a connection: one status, its pt-BR
message, and the details (never a token)."""

from django.utils.translation import gettext as _

from organizations.models import Organization
from whatsapp.models import Connection, Onboarding, PhoneNumber

STATUS_MESSAGES = {
    "not_connected": lambda c: _("WhatsApp is not connected."),
    "connecting": lambda c: _("Connecting…"),
    "connected": lambda c: _("WhatsApp connected"),
    "awaiting_phone_selection": lambda c: _("Choose the phone number to use."),
    "cancelled": lambda c: _("Connection cancelled. Click to try again."),
    "error": lambda c: _(
        "Could not connect. Error: %(message)s. Please contact support."
    ) % {"message": (c.get("errorMessage") or _("unknown")).rstrip(". ")},
    "expired": lambda c: _("Session expired, please try again."),
    "token_invalid": lambda c: _("Session expired. Click to reconnect."),
    "disconnected": lambda c: _("WhatsApp disconnected."),
}


def connection_status_for(organization: Organization) -> dict:
    """What the settings page shows: one status, its pt-BR message, and the details."""
    connection = (
        Connection.objects.filter(organization=organization)
        .prefetch_related("phone_numbers").order_by("-created_at").first()
    )
    onboarding = Onboarding.objects.filter(organization=organization).first()
    live = connection is not None and connection.status != Connection.Status.DISCONNECTED

    if live and connection.token_status == Connection.TokenStatus.INVALID:
        status = "token_invalid"
    elif live:
        status = connection.status
    elif onboarding and (connection is None or onboarding.created_at > connection.updated_at):
        status = {
            Onboarding.Status.PENDING: "connecting",
            Onboarding.Status.CANCELLED: "cancelled",
            Onboarding.Status.FAILED: "error",
            Onboarding.Status.EXPIRED: "expired",
            Onboarding.Status.COMPLETED: "connecting",
        }[onboarding.effective_status]
    elif connection is not None:
        status = "disconnected"
    else:
        status = "not_connected"

    body = {
        "connected": status == "connected",
        "status": status,
        "errorMessage": (connection.error_message if live and connection else "")
        or (onboarding.error_message if onboarding else ""),
        "connection": _connection_json(connection) if connection else None,
        "onboarding": _onboarding_json(onboarding) if onboarding else None,
    }
    body["message"] = str(STATUS_MESSAGES[status](body))
    return body


def _connection_json(connection: Connection) -> dict:
    return {
        "id": str(connection.pk),
        "wabaId": connection.waba_id,
        "status": connection.status,
        "isCoexistence": connection.is_coexistence,
        "tokenStatus": connection.token_status,
        "tokenExpiresAt": connection.token_expires_at,
        "connectedAt": connection.connected_at,
        "disconnectedAt": connection.disconnected_at,
        "disconnectReason": connection.disconnect_reason,
        "lastWebhookAt": connection.last_webhook_at,
        "phoneNumbers": [phone_number_json(c) for c in connection.phone_numbers.all()],
    }


def phone_number_json(config: PhoneNumber) -> dict:
    return {
        "phoneNumberId": config.phone_number_id,
        "wabaId": config.connection.waba_id,
        "displayPhoneNumber": config.display_phone_number,
        "verifiedName": config.verified_name,
        "status": config.status,
        "qualityRating": config.quality_rating,
        # The business portfolio's limit (TIER_250 … TIER_UNLIMITED), shared by its numbers.
        "messagingLimit": config.messaging_limit or None,
        "messagingLimitAt": config.messaging_limit_at,
        "isOnBizApp": config.is_on_biz_app,
        "registrationStatus": config.registration_status,
        "contactsSyncStatus": config.contacts_sync_status,
        "historySyncStatus": config.history_sync_status,
    }


def _onboarding_json(onboarding: Onboarding) -> dict:
    return {
        "trackingCode": str(onboarding.tracking_code),
        "status": onboarding.effective_status,
        "createdAt": onboarding.created_at,
        "expiresAt": onboarding.expires_at,
        "completedAt": onboarding.completed_at,
        "currentStep": onboarding.current_step,
        "errorCode": onboarding.error_code,
    }
