"""What the tenant's pages and the JSON API show about a connection: one status, its pt-BR
message, and the details (never a token)."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from organizations.models import Organization
from whatsapp.models import Connection, Onboarding, PhoneNumber

from .failures import disconnect_code, disconnect_message, failure_message

# States in which the admin may start a (new) onboarding: all but these two. A new one
# supersedes a pending onboarding, whose tracking code still attributes to the organization.
NO_START_STATES = ("connected", "awaiting_phone_selection")

STATUS_MESSAGES = {
    "not_connected": lambda c: _("WhatsApp is not connected."),
    "connecting": lambda c: _("Connecting…"),
    "connected": lambda c: _("WhatsApp connected"),
    "awaiting_phone_selection": lambda c: _("Choose the phone number to use."),
    "cancelled": lambda c: _("Connection cancelled. Click to try again."),
    "error": lambda c: failure_message(c.get("errorCode", "")),
    "stalled": lambda c: _(
        "We did not hear back from Meta. If you finished the steps there, WhatsApp connects "
        "as soon as Meta confirms; otherwise, try again."),
    "expired": lambda c: _("Session expired, please try again."),
    "token_invalid": lambda c: _("Session expired. Click to reconnect."),
    "disconnected": lambda c: disconnect_message(
        (c.get("connection") or {}).get("disconnectReason", "")),
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
        status = reconnect_status(connection, onboarding) or "token_invalid"
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
        if status == "connecting" and onboarding_is_idle(onboarding):
            status = "stalled"
    elif connection is not None:
        status = "disconnected"
    else:
        status = "not_connected"

    error_code = ""
    if live and status == "connecting":
        error_code = number_failure_code(connection)
        status = "error" if error_code else status
    elif status == "error":
        error_code = (("pipeline_failed" if live else onboarding.error_code) or "unknown")
    body = {
        "connected": status == "connected",
        "status": status,
        "canStart": status not in NO_START_STATES,
        "errorCode": error_code,
        "connection": _connection_json(connection) if connection else None,
        "onboarding": _onboarding_json(onboarding) if onboarding else None,
    }
    body["message"] = str(STATUS_MESSAGES[status](body))
    # Never Meta's raw text: the pt-BR failure (what happened, what to do, the code).
    body["errorMessage"] = body["message"] if status == "error" else ""
    if status == "disconnected":
        body["disconnectCode"] = disconnect_code(connection.disconnect_reason)
    body["reconnectBy"] = token_reconnect_by(connection if live else None)
    body["notice"] = token_expiry_notice(body["reconnectBy"])
    return body


def reconnect_status(connection: Connection, onboarding: Onboarding | None) -> str:
    """While the admin reconnects a connection whose token is invalid (an onboarding started
    after the token was found invalid), the page follows that onboarding: `connecting` (or
    `stalled`) until the new token arrives, so it keeps polling. Empty when not reconnecting."""
    since = connection.token_checked_at or connection.updated_at
    if onboarding is None or onboarding.created_at <= since:
        return ""
    if onboarding.effective_status == Onboarding.Status.PENDING:
        return "stalled" if onboarding_is_idle(onboarding) else "connecting"
    recent = timedelta(seconds=settings.WHATSAPP_ONBOARDING_IDLE_SECONDS)
    if (onboarding.effective_status == Onboarding.Status.COMPLETED
            and timezone.now() - onboarding.completed_at < recent):
        return "connecting"  # Meta confirmed; the pipeline is fetching the new token
    return ""


def onboarding_is_idle(onboarding: Onboarding, *, now=None) -> bool:
    """A pending onboarding with no signal from Meta or the browser for
    WHATSAPP_ONBOARDING_IDLE_SECONDS: the person left, or Meta never told us."""
    now = now or timezone.now()
    idle = timedelta(seconds=settings.WHATSAPP_ONBOARDING_IDLE_SECONDS)
    last_signal = max(filter(None, [onboarding.created_at, onboarding.webhook_received_at]))
    return onboarding.effective_status == Onboarding.Status.PENDING and now - last_signal >= idle


def number_failure_code(connection: Connection) -> str:
    """A chosen number Meta refused to register keeps the connection from ever connecting:
    133016 (blocked for 72 h) or a definitive refusal."""
    R = PhoneNumber.RegistrationStatus
    statuses = {n.registration_status for n in connection.phone_numbers.all()
                if n.status != PhoneNumber.Status.PENDING}
    if R.BLOCKED in statuses:
        return "133016"
    if R.FAILED in statuses:
        return "registration_failed"
    return ""


def token_reconnect_by(connection: Connection | None, *, now=None) -> str:
    """The date (DD/MM, São Paulo) to reconnect by, when the live token expires within the
    largest WHATSAPP_TOKEN_EXPIRY_NOTICE_DAYS; empty otherwise (a token that never expires has
    no date)."""
    if (connection is None or connection.token_status != Connection.TokenStatus.VALID
            or connection.token_expires_at is None):
        return ""
    now = now or timezone.now()
    days = max(settings.WHATSAPP_TOKEN_EXPIRY_NOTICE_DAYS, default=0)
    if not now < connection.token_expires_at <= now + timedelta(days=days):
        return ""
    return date_format(timezone.localtime(connection.token_expires_at), "d/m")


def token_expiry_notice(reconnect_by: str) -> str:
    if not reconnect_by:
        return ""
    return _("Reconnect your WhatsApp by %(date)s: Meta's access expires then and messages "
             "stop arriving.") % {"date": reconnect_by}


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
