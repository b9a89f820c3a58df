"""Workflows that span models: onboarding, attribution and disconnection of connections."""

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AuditLog
from audit.services import audit_record
from organizations.models import Organization
from whatsapp.core.graph import GraphClient, GraphError
from whatsapp.core.payloads import AccountUpdate
from whatsapp.models import flags

from . import tracking
from .analytics import analytics_record
from .models import AnalyticsEvent, Config, Connection, Onboarding

logger = logging.getLogger(__name__)
WEBHOOK_ACTOR = "meta-webhook"
COEXISTENCE_FINISH = "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING"


# --- Onboarding -------------------------------------------------------------------------------

def onboarding_start(*, organization: Organization, user, redirect_path: str) -> Onboarding:
    """Creates a pending onboarding with a fresh tracking code, in the DB and in Redis."""
    ttl = settings.WHATSAPP_ONBOARDING_TTL
    onboarding = Onboarding.objects.create(
        organization=organization,
        created_by=user if getattr(user, "is_authenticated", False) else None,
        tracking_code=uuid.uuid4(),
        redirect_path=redirect_path,
        expires_at=timezone.now() + timedelta(seconds=ttl),
    )
    tracking.remember(
        code=onboarding.tracking_code,
        organization_id=str(organization.pk),
        onboarding_id=str(onboarding.pk),
        created_at=int(onboarding.created_at.timestamp()),
        redirect_path=redirect_path,
        ttl=ttl,
    )
    return onboarding


def onboarding_extras(onboarding: Onboarding) -> dict:
    """The `extras` object of seed 000 §6.1, carrying the tracking code as sessionInfo."""
    return {
        "featureType": "whatsapp_business_app_onboarding",
        "sessionInfoVersion": "3",
        "version": "v3",
        "sessionInfo": {"trackingCode": str(onboarding.tracking_code)},
    }


def onboarding_url(onboarding: Onboarding) -> str:
    """Hosted Embedded Signup link, encoded as seed 000 §6.2 (encodeURIComponent of the JSON)."""
    extras = json.dumps(onboarding_extras(onboarding), separators=(",", ":"))
    query = urlencode(
        {"app_id": settings.META_APP_ID, "config_id": settings.META_CONFIG_ID, "extras": extras},
        quote_via=quote,
        safe="",
    )
    return f"{settings.META_ONBOARDING_URL}?{query}"


def onboarding_for_code(code: str, *, lock: bool = False) -> Onboarding | None:
    """Finds the onboarding of a tracking code: Redis first (fast path), the DB as the truth."""
    try:
        parsed = uuid.UUID(str(code))
    except ValueError:
        return None
    qs = Onboarding.objects.select_related("organization")
    if lock:
        qs = qs.select_for_update(of=("self",))
    cached = tracking.lookup(parsed)
    if cached and cached.get("onboardingId"):
        found = qs.filter(pk=cached["onboardingId"], tracking_code=parsed).first()
        if found:
            return found
    return qs.filter(tracking_code=parsed).first()


def onboardings_expire(*, now=None) -> int:
    """Marks pending onboardings past their expiry as expired (Redis keys expire by TTL)."""
    now = now or timezone.now()
    return Onboarding.objects.filter(
        status=Onboarding.Status.PENDING, expires_at__lte=now
    ).update(status=Onboarding.Status.EXPIRED)


# --- Connections ------------------------------------------------------------------------------

def _live_connection_for_update(waba_id: str) -> Connection | None:
    return Connection.objects.active().select_for_update().filter(waba_id=waba_id).first()


def _live_connection_get_or_create(waba_id: str, defaults: dict) -> tuple[Connection, bool]:
    """The one live connection of a WABA, created if needed; safe under concurrent deliveries."""
    connection = _live_connection_for_update(waba_id)
    if connection:
        return connection, False
    try:
        with transaction.atomic():
            return Connection.objects.create(waba_id=waba_id, **defaults), True
    except IntegrityError:
        # Another delivery created it first (the partial unique index serialized us).
        return _live_connection_for_update(waba_id), False


@dataclass
class Attribution:
    organization: Organization | None
    via: str
    onboarding: Onboarding | None = None


def _attribute(update: AccountUpdate) -> Attribution:
    """SPEC §3 order: tracking code → WABA already bound → owner business → orphan."""
    if update.tracking_code:
        onboarding = onboarding_for_code(update.tracking_code, lock=True)
        if onboarding is None:
            logger.error("PARTNER_ADDED with unknown tracking code for WABA %s", update.waba_id)
        elif onboarding.status == Onboarding.Status.PENDING and onboarding.is_expired:
            # Seed 000 §7.1: an expired code does not attach; the page shows "session expired".
            onboarding.status = Onboarding.Status.EXPIRED
            onboarding.webhook_received_at = timezone.now()
            onboarding.waba_id = update.waba_id
            onboarding.save(update_fields=["status", "webhook_received_at", "waba_id"])
            logger.error("PARTNER_ADDED with expired tracking code for WABA %s", update.waba_id)
        elif onboarding.effective_status in (Onboarding.Status.PENDING,
                                             Onboarding.Status.COMPLETED):
            return Attribution(onboarding.organization, "tracking_code", onboarding)
    bound = (
        Connection.objects.filter(waba_id=update.waba_id, organization__isnull=False)
        .select_related("organization").order_by("-created_at").first()
    )
    if bound:
        return Attribution(bound.organization, "waba")
    if update.owner_business_id:
        earlier = (
            Connection.objects.filter(
                owner_business_id=update.owner_business_id, organization__isnull=False
            )
            .select_related("organization").order_by("-created_at").first()
        )
        if earlier:
            return Attribution(earlier.organization, "owner_business")
    return Attribution(None, "")


@transaction.atomic
def connection_partner_added(*, update: AccountUpdate, payload: dict | None = None) -> Connection:
    """Applies PARTNER_ADDED: attributes the WABA to a tenant (or keeps it as an orphan)."""
    attribution = _attribute(update)
    connection, created = _live_connection_get_or_create(
        update.waba_id,
        {
            "organization": attribution.organization,
            "owner_business_id": update.owner_business_id,
            "partner_business_id": update.partner_business_id,
            "status": Connection.Status.ERROR,
            "source_event": payload,
        },
    )
    was_bound = connection.organization_id is not None and not created
    if connection.organization_id is None and attribution.organization is not None and (
        created or attribution.via == "tracking_code"
    ):
        # A tracking code is proof of the tenant's session, so it may adopt an orphan; the
        # weaker correlations only ever apply to a connection created just now.
        connection.organization = attribution.organization
    elif (attribution.organization is not None
          and connection.organization_id not in (None, attribution.organization.pk)):
        logger.error("WABA %s is bound to another organization; %s correlation ignored",
                     update.waba_id, attribution.via)
        attribution = Attribution(connection.organization, "waba")

    connection.owner_business_id = connection.owner_business_id or update.owner_business_id
    connection.partner_business_id = connection.partner_business_id or update.partner_business_id
    connection.last_webhook_at = timezone.now()
    if attribution.onboarding and connection.organization_id == attribution.organization.pk:
        connection.onboarding = attribution.onboarding
        connection.tracking_code_used = attribution.onboarding.tracking_code
        onboarding_complete(attribution.onboarding, waba_id=update.waba_id, payload=payload)

    if connection.organization_id is None:
        connection.error_message = "orphan: no organization could be matched"
        connection.save()
        if created:
            audit_record(action=AuditLog.Action.WABA_ORPHANED, actor_label=WEBHOOK_ACTOR,
                         target=f"waba:{update.waba_id}",
                         metadata={"owner_business_id": update.owner_business_id})
        return connection

    connection.attributed_by = connection.attributed_by or attribution.via
    if was_bound:
        connection.save()
    else:
        _bind(connection, via=connection.attributed_by, actor_label=WEBHOOK_ACTOR)
    pipeline_enqueue(connection.pk)
    return connection


def _bind(connection: Connection, *, via: str, actor=None, actor_label: str = "",
          request=None) -> None:
    """The connection now belongs to its organization: saved (with any pending changes) and
    audited once; the caller then enqueues the pipeline."""
    connection.status = Connection.Status.CONNECTING
    connection.connected_at = timezone.now()
    connection.error_message = ""
    connection.save()
    audit_record(
        action=AuditLog.Action.WHATSAPP_CONNECTED, organization=connection.organization,
        actor=actor, actor_label=actor_label, request=request,
        target=f"waba:{connection.waba_id}",
        metadata={"waba_id": connection.waba_id, "via": via},
    )


def pipeline_enqueue(connection_id) -> None:
    from .tasks import run_connection_pipeline

    def send() -> None:
        try:
            run_connection_pipeline.delay(str(connection_id))
        except Exception:
            logger.warning("Pipeline for connection %s not enqueued; the sweep will resume it",
                           connection_id)

    transaction.on_commit(send)


def onboarding_complete(onboarding: Onboarding, *, waba_id: str, payload: dict | None = None,
                        finish_event: str = "") -> None:
    """Marks the onboarding completed once, records the analytics event, drops the Redis key."""
    if onboarding.status == Onboarding.Status.COMPLETED:
        return
    now = timezone.now()
    onboarding.status = Onboarding.Status.COMPLETED
    onboarding.completed_at = now
    if payload is not None:
        onboarding.webhook_received_at = now
        onboarding.webhook_payload = payload
    onboarding.waba_id = waba_id
    onboarding.finish_event = onboarding.finish_event or finish_event
    onboarding.save()
    analytics_record(
        name=AnalyticsEvent.Name.SIGNUP_COMPLETED,
        dedupe_key=f"completed:{onboarding.pk}",
        organization=onboarding.organization,
        user=onboarding.created_by,
        properties={
            "waba_id": waba_id,
            "has_existing_number": onboarding.finish_event == COEXISTENCE_FINISH,
            "time_to_complete_seconds": int((now - onboarding.created_at).total_seconds()),
        },
    )
    code = onboarding.tracking_code
    transaction.on_commit(lambda: tracking.forget(code))


class CallbackError(Exception):
    """A browser callback that cannot be applied; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def onboarding_for_callback(*, organization: Organization, state: str,
                            lock: bool = True) -> Onboarding:
    """The caller's onboarding for `state`, locked. Another org's code reads as not found.

    `lock=False` is for checks made outside a transaction (SELECT FOR UPDATE needs one).
    """
    onboarding = onboarding_for_code(state, lock=lock)
    if onboarding is None or onboarding.organization_id != organization.pk:
        raise CallbackError(_("Unknown onboarding session (state)."), status=404)
    if onboarding.status == Onboarding.Status.PENDING and onboarding.is_expired:
        onboarding.status = Onboarding.Status.EXPIRED
        onboarding.save(update_fields=["status"])
    if onboarding.status == Onboarding.Status.EXPIRED:
        raise CallbackError(_("Session expired, please try again."), status=410)
    return onboarding


@transaction.atomic
def onboarding_browser_outcome(*, organization: Organization, state: str, event: str,
                               current_step: str = "", error_code: str = "",
                               error_message: str = "", session_id: str = "") -> Onboarding:
    """Records a CANCEL (with its step) or a Meta error reported by the popup."""
    onboarding = onboarding_for_callback(organization=organization, state=state)
    if onboarding.status != Onboarding.Status.PENDING:
        raise CallbackError(_("This onboarding session is already finished."), status=409)
    onboarding.current_step = current_step[:64]
    onboarding.session_id = session_id[:128]
    failed = bool(error_code or error_message) or event == "ERROR"
    if failed:
        onboarding.status = Onboarding.Status.FAILED
        onboarding.error_code = error_code[:64]
        onboarding.error_message = error_message[:2000]
        analytics_record(
            name=AnalyticsEvent.Name.SIGNUP_FAILED, dedupe_key=f"failed:{onboarding.pk}",
            organization=organization, user=onboarding.created_by,
            properties={"error_code": onboarding.error_code,
                        "error_message": onboarding.error_message,
                        "step_failed": onboarding.current_step},
        )
    else:
        onboarding.status = Onboarding.Status.CANCELLED
        analytics_record(
            name=AnalyticsEvent.Name.SIGNUP_CANCELLED, dedupe_key=f"cancelled:{onboarding.pk}",
            organization=organization, user=onboarding.created_by,
            properties={"step_cancelled": onboarding.current_step},
        )
    onboarding.save()
    return onboarding


def _granted_wabas(debug: dict) -> set[str]:
    granted: set[str] = set()
    for scope in debug.get("granular_scopes") or []:
        if scope.get("scope") == "whatsapp_business_management":
            granted.update(str(t) for t in scope.get("target_ids") or [])
    return granted


def connection_from_browser_finish(*, organization: Organization, user, state: str, code: str,
                                   event: str, waba_id: str = "", phone_number_id: str = "",
                                   business_id: str = "", request=None) -> Connection:
    """The popup finished: exchange the code (30 s life) outside any transaction, prove with
    debug_token that the token covers the WABA, then bind the WABA to the caller's org."""
    # Fail fast, before Graph. No lock: this runs in autocommit, outside any transaction; the
    # locked check is repeated inside _bind_from_browser.
    onboarding_for_callback(organization=organization, state=state, lock=False)
    client = GraphClient()
    try:
        token = str(client.exchange_code(code).get("access_token") or "")
        debug = client.debug_token(token) if token else {}
    except GraphError as exc:
        if exc.is_transient:
            raise CallbackError(_("Meta is unavailable right now. Please try again."), 502) from exc
        raise CallbackError(_("Meta did not accept the authorization code: %(error)s")
                            % {"error": exc.message}, 400) from exc
    granted = _granted_wabas(debug)
    if not waba_id and len(granted) == 1:
        waba_id = next(iter(granted))  # a finish message may be missing: the token says which
    if not token or not debug.get("is_valid", False) or waba_id not in granted:
        raise CallbackError(_("The token from Meta does not cover this WhatsApp Business "
                              "account."), 403)
    return _bind_from_browser(organization=organization, user=user, state=state, token=token,
                              debug=debug, event=event, waba_id=waba_id,
                              phone_number_id=phone_number_id, business_id=business_id,
                              request=request)


@transaction.atomic
def _bind_from_browser(*, organization, user, state, token, debug, event, waba_id,
                       phone_number_id, business_id, request) -> Connection:
    onboarding = onboarding_for_callback(organization=organization, state=state)
    connection, created = _live_connection_get_or_create(
        waba_id, {"organization": organization, "status": Connection.Status.CONNECTING,
                  "owner_business_id": business_id},
    )
    if connection.organization_id not in (None, organization.pk):
        raise CallbackError(_("This WhatsApp Business account is connected to another "
                              "organization. Please contact support."), 409)
    # The browser's proof attaches an orphan that the webhook created before us.
    newly_bound = created or connection.organization_id is None
    connection.organization = organization
    connection.onboarding = onboarding
    connection.tracking_code_used = onboarding.tracking_code
    connection.finish_event = event
    connection.requested_phone_number_id = phone_number_id or connection.requested_phone_number_id
    connection.owner_business_id = connection.owner_business_id or business_id
    connection.attributed_by = "browser_callback"
    connection_store_token(connection, token=token, source="code_exchange",
                           expires_at=int(debug.get("expires_at") or 0), save=False)
    if newly_bound:
        _bind(connection, via="browser_callback", actor=user, request=request)
    else:
        connection.save()
    onboarding_complete(onboarding, waba_id=waba_id, finish_event=event)
    pipeline_enqueue(connection.pk)
    return connection


def connection_store_token(connection: Connection, *, token: str, source: str,
                           expires_at: int = 0, save: bool = True) -> None:
    """Encrypts and stores a business token; `expires_at` 0 means it never expires."""
    connection.set_access_token(token)
    connection.token_source = source
    connection.token_checked_at = timezone.now()
    connection.token_expires_at = (
        datetime.fromtimestamp(expires_at, tz=UTC) if expires_at else None
    )
    if save:
        connection.save(update_fields=["access_token_encrypted", "token_status", "token_source",
                                       "token_checked_at", "token_expires_at", "updated_at"])


def connection_token_invalidate(connection: Connection, *, reason: str,
                                actor_label: str = "system") -> bool:
    """Marks the token invalid (the tenant is asked to reconnect); audits once per transition."""
    changed = Connection.objects.filter(pk=connection.pk).exclude(
        token_status=Connection.TokenStatus.INVALID
    ).update(token_status=Connection.TokenStatus.INVALID, token_checked_at=timezone.now())
    connection.token_status = Connection.TokenStatus.INVALID
    if changed:
        audit_record(action=AuditLog.Action.TOKEN_INVALIDATED,
                     organization=connection.organization, actor_label=actor_label,
                     target=f"waba:{connection.waba_id}", metadata={"reason": reason[:500]})
    return bool(changed)


def connection_mark_connected(connection: Connection) -> None:
    Connection.objects.filter(pk=connection.pk).exclude(
        status__in=[Connection.Status.CONNECTED, Connection.Status.DISCONNECTED]
    ).update(status=Connection.Status.CONNECTED, error_message="", updated_at=timezone.now())
    connection.refresh_from_db(fields=["status", "error_message", "updated_at"])


def config_configured(config: Config) -> None:
    """A number is ready: deliveries parked for it (arrived before setup ended) are processed."""
    from .webhooks import webhooks_unpark

    phone_number_id = config.phone_number_id
    transaction.on_commit(lambda: webhooks_unpark(phone_number_id=phone_number_id))


@transaction.atomic
def connection_select_phone(*, organization: Organization, waba_id: str,
                            phone_number_id: str) -> Config:
    connection = (Connection.objects.active().select_for_update()
                  .filter(organization=organization, waba_id=waba_id).first())
    if connection is None:
        raise CallbackError(_("Connection not found."), 404)
    config = Config.objects.filter(connection=connection, phone_number_id=phone_number_id).first()
    if config is None:
        raise CallbackError(_("This number does not belong to the connection."), 404)
    if config.status == Config.Status.PENDING:
        config.status = Config.Status.CONFIGURING
        config.save(update_fields=["status", "updated_at"])
    if connection.status == Connection.Status.AWAITING_PHONE_SELECTION:
        connection.status = Connection.Status.CONNECTING
        connection.save(update_fields=["status", "updated_at"])
    pipeline_enqueue(connection.pk)
    return config


@transaction.atomic
def connection_disconnect(*, waba_id: str, reason: str, actor=None, actor_label: str = "",
                          request=None, details: dict | None = None) -> Connection | None:
    """Disconnects the live connection of a WABA: wipes its credentials and audits once."""
    connection = _live_connection_for_update(waba_id)
    if connection is None:
        return None
    now = timezone.now()
    connection.status = Connection.Status.DISCONNECTED
    connection.disconnected_at = now
    connection.disconnect_reason = reason[:200]
    connection.wipe_credentials()
    connection.save()
    Config.objects.filter(connection=connection).update(registration_pin_encrypted="",
                                                        status=Config.Status.DISABLED)
    audit_record(
        action=AuditLog.Action.WHATSAPP_DISCONNECTED, organization=connection.organization,
        actor=actor, actor_label=actor_label, request=request,
        target=f"waba:{waba_id}", metadata={"reason": reason, **(details or {})},
    )
    return connection


# --- Status for the tenant --------------------------------------------------------------------

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
        .prefetch_related("configs").order_by("-created_at").first()
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
        "phoneNumbers": [config_json(c) for c in connection.configs.all()],
    }


def config_json(config: Config) -> dict:
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


def connection_disconnect_by_user(*, organization: Organization, reason: str, request=None
                                  ) -> Connection:
    """The admin disconnects: unsubscribe our app from the WABA, wipe secrets, audit, record."""
    connection = Connection.objects.active().filter(organization=organization).first()
    if connection is None:
        raise CallbackError(_("There is no active WhatsApp connection."), 404)
    unsubscribe_error = ""
    if connection.access_token_encrypted:
        try:
            GraphClient(connection.get_access_token()).unsubscribe_app(connection.waba_id)
        except GraphError as exc:
            # Disconnecting must work even when Meta refuses (e.g. the token was revoked).
            unsubscribe_error = str(exc)
    disconnected = connection_disconnect(
        waba_id=connection.waba_id, reason=reason, request=request,
        details={"unsubscribe_error": unsubscribe_error} if unsubscribe_error else None,
    )
    analytics_record(
        name=AnalyticsEvent.Name.DISCONNECTED, dedupe_key=f"disconnected:{connection.pk}",
        organization=organization, user=getattr(request, "user", None),
        properties={"reason": reason},
    )
    return disconnected or connection


def signup_enabled_for(organization: Organization) -> bool:
    """Feature flag `whatsapp_embedded_signup_enabled` (seed 001); see the back-office flags."""
    return flags.flag_enabled(flags.SIGNUP_ENABLED, organization)


@transaction.atomic
def connection_claim(*, connection_id, organization: Organization, actor, request=None
                     ) -> Connection:
    """Support assigns an orphan WABA to an organization; then the normal pipeline runs."""
    connection = (Connection.objects.orphans().select_for_update()
                  .filter(pk=connection_id).first())
    if connection is None:
        raise CallbackError(_("This WABA is no longer an orphan (claimed or disconnected)."),
                            409)
    connection.organization = organization
    connection.attributed_by = "claim"
    _bind(connection, via="claim", actor=actor, request=request)
    audit_record(action=AuditLog.Action.WABA_CLAIMED, organization=organization, actor=actor,
                 request=request, target=f"waba:{connection.waba_id}",
                 metadata={"waba_id": connection.waba_id,
                           "owner_business_id": connection.owner_business_id})
    pipeline_enqueue(connection.pk)
    return connection
