"""What the tenant's pages and the JSON API show about a connection: one status, its pt-BR
message, and the details (never a token)."""

from django.utils.translation import gettext as _

from organizations.models import Organization
from whatsapp.models import Connection, HistorySync, Onboarding, PhoneNumber
from whatsapp.onboarding.reconcile import orphan_under_review
from whatsapp.onboarding.retries import error_text, max_attempts

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
    connections = list(Connection.objects.filter(organization=organization)
                       .prefetch_related("phone_numbers__history_sync")
                       .order_by("-created_at"))
    live_ones = [c for c in connections if c.status != Connection.Status.DISCONNECTED]
    # Several numbers: the top-level fields describe the newest live connection (or, with
    # none live, the newest one), as before; `connections` lists every live one.
    connection = (live_ones or connections or [None])[0]
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
        "errorMessage": (_connection_error(connection) if live and connection else "")
        or (onboarding.error_message if onboarding else ""),
        "errorCode": (connection.error_code if live and connection else "")
        or (onboarding.error_code if onboarding and status != "connecting" else "") or "",
        "retry": _retry_json(connection) if live and status == "connecting" else None,
        # An unattributed WABA arrived after this organization's unfinished signup: support is
        # confirming whose it is (the tenant need not start over).
        "supportReviewing": status != "connected" and orphan_under_review(organization),
        "connection": _connection_json(connection) if connection else None,
        "connections": [_connection_json(c) for c in live_ones],
        "onboarding": _onboarding_json(onboarding) if onboarding else None,
    }
    body["message"] = str(STATUS_MESSAGES[status](body))
    return body


def _connection_error(connection: Connection) -> str:
    """The tenant's pt-BR text for the connection's error: the code's, else what was stored."""
    return error_text(connection.error_code) or connection.error_message


def _retry_json(connection: Connection) -> dict | None:
    """While automatic attempts go on: which one comes next, of how many, and when."""
    if connection.pipeline_next_attempt_at is None:
        return None
    return {"attempt": connection.pipeline_attempts + 1, "maxAttempts": max_attempts(),
            "nextAttemptAt": connection.pipeline_next_attempt_at}


def _connection_json(connection: Connection) -> dict:
    return {
        "id": str(connection.pk),
        "wabaId": connection.waba_id,
        "status": connection.status,
        "errorCode": connection.error_code,
        "errorMessage": _connection_error(connection),
        "retry": _retry_json(connection),
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
        "isOnBizApp": config.is_on_biz_app,
        "registrationStatus": config.registration_status,
        "contactsSyncStatus": config.contacts_sync_status,
        "historySyncStatus": config.history_sync_status,
        "sync": sync_progress(config),
    }


SYNC_STATES = {
    PhoneNumber.SyncStatus.PENDING: "pending", PhoneNumber.SyncStatus.REQUESTING: "running",
    PhoneNumber.SyncStatus.REQUESTED: "requested", PhoneNumber.SyncStatus.UNKNOWN: "failed",
    PhoneNumber.SyncStatus.FAILED: "failed", PhoneNumber.SyncStatus.EXPIRED: "failed",
}


def sync_progress(config: PhoneNumber) -> dict | None:
    """A coexistence number's syncs as the tenant follows them: each one pending, running,
    requested (Meta accepted; its data arrives by webhook), done, declined or failed; the
    history with Meta's percent once chunks arrive. None when not coexistence."""
    if config.contacts_sync_status == PhoneNumber.SyncStatus.NOT_NEEDED and \
            config.history_sync_status == PhoneNumber.SyncStatus.NOT_NEEDED:
        return None
    history = {"state": SYNC_STATES.get(config.history_sync_status, "pending"), "percent": 0}
    record = getattr(config, "history_sync", None)
    if record is not None:
        history["percent"] = record.progress
        history["state"] = {HistorySync.Status.COMPLETED: "done",
                            HistorySync.Status.DECLINED: "declined"}.get(record.status,
                                                                          "running")
    return {"contacts": {"state": SYNC_STATES.get(config.contacts_sync_status, "pending")},
            "history": history}


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
