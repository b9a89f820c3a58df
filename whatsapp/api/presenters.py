"""What the tenant's pages and the JSON API show about a connection: one status, its pt-BR
message, and the details (never a token)."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from organizations.models import Organization
from whatsapp.models import Connection, HistorySync, Onboarding, PhoneNumber
from whatsapp.onboarding.reconcile import orphan_under_review
from whatsapp.onboarding.retries import max_attempts

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
    connections = list(Connection.objects.filter(organization=organization)
                       .prefetch_related("phone_numbers__history_sync")
                       .order_by("-created_at"))
    live_ones = [c for c in connections if c.status != Connection.Status.DISCONNECTED]
    # Several numbers: the top-level fields describe the newest live connection (or, with
    # none live, the newest one), as before; `connections` lists every live one.
    connection = (live_ones or connections or [None])[0]
    onboarding = Onboarding.objects.filter(organization=organization).first()
    live = connection is not None and connection.status != Connection.Status.DISCONNECTED

    # "Adicionar outro número": a signup started after the newest live connection was made.
    adding = (live and connection.status == Connection.Status.CONNECTED and onboarding is not None
              and onboarding.effective_status == Onboarding.Status.PENDING
              and onboarding.created_at > connection.created_at)
    if live and connection.token_status == Connection.TokenStatus.INVALID:
        status = reconnect_status(connection, onboarding) or "token_invalid"
    elif adding:
        status = "stalled" if onboarding_is_idle(onboarding) else "connecting"
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
    if live and status == "connecting" and not adding:
        error_code = number_failure_code(connection)
        status = "error" if error_code else status
    elif status == "error":
        error_code = ((connection.error_code or "pipeline_failed") if live
                      else onboarding.error_code) or "unknown"
    body = {
        # Adding another number: the ones already connected keep working.
        "connected": status == "connected" or adding,
        "status": status,
        "canStart": status not in NO_START_STATES,
        "errorCode": error_code,
        # While automatic attempts go on: which one comes next, of how many, and when.
        "retry": _retry_json(connection) if live and status == "connecting" else None,
        # An unattributed WABA arrived after this organization's unfinished signup: support is
        # confirming whose it is (the tenant need not start over).
        "supportReviewing": status not in NO_START_STATES and orphan_under_review(organization),
        "connection": _connection_json(connection) if connection else None,
        "connections": [_connection_json(c) for c in live_ones],
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


def _retry_json(connection: Connection) -> dict | None:
    if connection.pipeline_next_attempt_at is None:
        return None
    return {"attempt": connection.pipeline_attempts + 1, "maxAttempts": max_attempts(),
            "nextAttemptAt": connection.pipeline_next_attempt_at}


def _connection_json(connection: Connection) -> dict:
    failed = connection.status == Connection.Status.ERROR and connection.organization_id
    return {
        "id": str(connection.pk),
        "wabaId": connection.waba_id,
        "status": connection.status,
        "errorCode": (connection.error_code or "pipeline_failed") if failed else "",
        "errorMessage": failure_message(connection.error_code or "pipeline_failed")
        if failed else "",
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
        # The business portfolio's limit (TIER_250 … TIER_UNLIMITED), shared by its numbers.
        "messagingLimit": config.messaging_limit or None,
        "messagingLimitAt": config.messaging_limit_at,
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
    S = PhoneNumber.SyncStatus
    if config.contacts_sync_status == S.NOT_NEEDED and config.history_sync_status == S.NOT_NEEDED:
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
