"""Workflows that span models: onboarding, attribution and disconnection of connections."""

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AuditLog
from audit.services import audit_record
from organizations.models import Organization

from . import tracking
from .models import Connection, Onboarding
from .payloads import AccountUpdate

logger = logging.getLogger(__name__)
WEBHOOK_ACTOR = "meta-webhook"


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
    now = timezone.now()
    connection, created = _live_connection_get_or_create(
        update.waba_id,
        {
            "organization": attribution.organization,
            "owner_business_id": update.owner_business_id,
            "partner_business_id": update.partner_business_id,
            "status": Connection.Status.ERROR,
        },
    )
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
    connection.last_webhook_at = now
    if attribution.onboarding and connection.organization_id == attribution.organization.pk:
        connection.onboarding = attribution.onboarding
        connection.tracking_code_used = attribution.onboarding.tracking_code
        _onboarding_complete(attribution.onboarding, update=update, payload=payload, now=now)

    if connection.organization_id is None:
        connection.error_message = "orphan: no organization could be matched"
        connection.save()
        if created:
            audit_record(action=AuditLog.Action.WABA_ORPHANED, actor_label=WEBHOOK_ACTOR,
                         target=f"waba:{update.waba_id}",
                         metadata={"owner_business_id": update.owner_business_id})
        return connection

    connection.attributed_by = connection.attributed_by or attribution.via
    transitioned = connection.status != Connection.Status.CONNECTED
    if transitioned:
        connection.status = Connection.Status.CONNECTED
        connection.connected_at = now
        connection.error_message = ""
    connection.save()
    if transitioned:
        audit_record(
            action=AuditLog.Action.WHATSAPP_CONNECTED, organization=connection.organization,
            actor_label=WEBHOOK_ACTOR, target=f"waba:{connection.waba_id}",
            metadata={"waba_id": connection.waba_id, "via": connection.attributed_by},
        )
    return connection


def _onboarding_complete(onboarding: Onboarding, *, update: AccountUpdate, payload: dict | None,
                         now) -> None:
    if onboarding.status == Onboarding.Status.COMPLETED:
        return
    onboarding.status = Onboarding.Status.COMPLETED
    onboarding.completed_at = now
    onboarding.webhook_received_at = now
    onboarding.waba_id = update.waba_id
    onboarding.webhook_payload = payload
    onboarding.save()
    code = onboarding.tracking_code
    transaction.on_commit(lambda: tracking.forget(code))


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
    audit_record(
        action=AuditLog.Action.WHATSAPP_DISCONNECTED, organization=connection.organization,
        actor=actor, actor_label=actor_label, request=request,
        target=f"waba:{waba_id}", metadata={"reason": reason, **(details or {})},
    )
    return connection


def connection_touch(*, waba_id: str) -> None:
    Connection.objects.active().filter(waba_id=waba_id).update(last_webhook_at=timezone.now())


# --- Status for the tenant --------------------------------------------------------------------

STATUS_MESSAGES = {
    "not_connected": lambda c: _("WhatsApp is not connected."),
    "connecting": lambda c: _("Connecting…"),
    "connected": lambda c: _("WhatsApp connected"),
    "awaiting_phone_selection": lambda c: _("Choose the phone number to use."),
    "cancelled": lambda c: _("Connection cancelled. Click to try again."),
    "error": lambda c: _(
        "Could not connect. Error: %(message)s. Please contact support."
    ) % {"message": c.get("errorMessage") or _("unknown")},
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
        "phoneNumbers": [
            {
                "phoneNumberId": c.phone_number_id,
                "displayPhoneNumber": c.display_phone_number,
                "verifiedName": c.verified_name,
                "status": c.status,
                "qualityRating": c.quality_rating,
                "isOnBizApp": c.is_on_biz_app,
            }
            for c in connection.configs.all()
        ],
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
