"""A connection's lifecycle once it has an organization: bound, token stored or invalidated,
number chosen and configured, connected, disconnected, claimed from the orphans."""

import logging

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AuditLog
from audit.services import audit_record
from organizations.models import Organization
from whatsapp.core import jobs, lanes
from whatsapp.core.graph import GraphClient, GraphError
from whatsapp.events import facts
from whatsapp.events.outbox import emit
from whatsapp.models import AnalyticsEvent, Connection, PhoneNumber, WebhookLog

from .analytics import analytics_record
from .retries import pipeline_restart
from .signup import OnboardingError

logger = logging.getLogger(__name__)


def connection_bind(connection: Connection, *, via: str, actor=None, actor_label: str = "",
          request=None) -> None:
    """The connection now belongs to its organization: saved (with any pending changes) and
    audited once; the caller then enqueues the pipeline."""
    connection.status = Connection.Status.CONNECTING
    connection.connected_at = timezone.now()
    connection.error_message = ""
    with transaction.atomic():
        connection.save()
        emit(facts.connection_status(connection, via))
    audit_record(
        action=AuditLog.Action.WHATSAPP_CONNECTED, organization=connection.organization,
        actor=actor, actor_label=actor_label, request=request,
        target=f"waba:{connection.waba_id}",
        metadata={"waba_id": connection.waba_id, "via": via},
    )


def pipeline_enqueue(connection_id) -> None:
    """Runs the connection's pipeline after the caller's transaction commits."""
    transaction.on_commit(
        lambda: jobs.enqueue_quietly("run_connection_pipeline", str(connection_id)))


@transaction.atomic
def pipeline_resume(*, connection_id, actor, request=None) -> Connection:
    """Support runs what is left of a stalled (`connecting`) or failed (`error`) tenant
    connection's pipeline again, with fresh automatic attempts; it resumes from its markers.
    Audited."""
    connection = (Connection.objects.select_for_update(of=("self",))
                  .select_related("organization").filter(pk=connection_id).first())
    if connection is None or connection.organization_id is None:
        raise OnboardingError("connection_not_found", _(
            "Connection not found, or still an orphan: claim it first."))
    return pipeline_restart(connection, actor=actor, request=request)


def connection_token_invalidate(connection: Connection, *, reason: str,
                                actor_label: str = "system") -> bool:
    """Marks the token invalid (the tenant is asked to reconnect); audits once per transition."""
    with transaction.atomic():
        changed = Connection.objects.filter(pk=connection.pk).exclude(
            token_status=Connection.TokenStatus.INVALID
        ).update(token_status=Connection.TokenStatus.INVALID, token_checked_at=timezone.now())
        connection.token_status = Connection.TokenStatus.INVALID
        if changed:
            emit(facts.connection_status(connection, "token_invalid"))
    if changed:
        audit_record(action=AuditLog.Action.TOKEN_INVALIDATED,
                     organization=connection.organization, actor_label=actor_label,
                     target=f"waba:{connection.waba_id}", metadata={"reason": reason[:500]})
    return bool(changed)


@transaction.atomic
def connection_mark_connected(connection: Connection) -> None:
    changed = Connection.objects.filter(pk=connection.pk).exclude(
        status__in=[Connection.Status.CONNECTED, Connection.Status.DISCONNECTED]
    ).update(status=Connection.Status.CONNECTED, error_message="", updated_at=timezone.now())
    connection.refresh_from_db(fields=["status", "error_message", "updated_at"])
    if changed:
        emit(facts.connection_status(connection))


def number_configured(config: PhoneNumber) -> None:
    """A number is ready: deliveries parked for it (arrived before setup ended) are processed."""
    phone_number_id = config.phone_number_id

    def unpark() -> None:
        ids = WebhookLog.objects.unpark(phone_number_id=phone_number_id)
        fields = dict(WebhookLog.objects.filter(pk__in=ids).values_list("pk", "fields"))
        for log_id in ids:
            # Its lane's queue: a parked history chunk never waits in front of live work.
            jobs.enqueue_quietly(lanes.process_task(fields.get(log_id)), log_id)

    transaction.on_commit(unpark)


@transaction.atomic
def connection_select_phone(*, organization: Organization, waba_id: str,
                            phone_number_id: str) -> PhoneNumber:
    connection = (Connection.objects.active().select_for_update()
                  .filter(organization=organization, waba_id=waba_id).first())
    if connection is None:
        raise OnboardingError("connection_not_found", _("Connection not found."))
    config = PhoneNumber.objects.filter(
        connection=connection, phone_number_id=phone_number_id
    ).first()
    if config is None:
        raise OnboardingError(
            "number_not_found", _("This number does not belong to the connection.")
        )
    if config.status == PhoneNumber.Status.PENDING:
        config.status = PhoneNumber.Status.CONFIGURING
        config.save(update_fields=["status", "updated_at"])
    if connection.status == Connection.Status.AWAITING_PHONE_SELECTION:
        connection.status = Connection.Status.CONNECTING
        connection.save(update_fields=["status", "updated_at"])
        emit(facts.connection_status(connection, "phone_selected"))
    pipeline_enqueue(connection.pk)
    return config


@transaction.atomic
def connection_disconnect(
    *,
    waba_id: str,
    reason: str,
    actor=None,
    actor_label: str = "",
    request=None,
    details: dict | None = None,
) -> Connection | None:
    """Disconnects the live connection of a WABA: wipes its credentials and audits once."""
    connection = Connection.objects.live_for_update(waba_id)
    if connection is None:
        return None
    now = timezone.now()
    connection.status = Connection.Status.DISCONNECTED
    connection.disconnected_at = now
    connection.disconnect_reason = reason[:200]
    connection.wipe_credentials()
    connection.save()
    PhoneNumber.objects.filter(connection=connection).update(
        registration_pin_encrypted="", status=PhoneNumber.Status.DISABLED
    )
    emit(facts.connection_status(connection, reason))
    audit_record(
        action=AuditLog.Action.WHATSAPP_DISCONNECTED,
        organization=connection.organization,
        actor=actor,
        actor_label=actor_label,
        request=request,
        target=f"waba:{waba_id}",
        metadata={"reason": reason, **(details or {})},
    )
    return connection


def connection_disconnect_by_user(
    *, organization: Organization, reason: str, request=None, connection_id=None
) -> Connection:
    """The admin disconnects one of the organization's connections (the newest live one when
    no id is given): unsubscribe our app from the WABA, wipe secrets, audit, record."""
    live = Connection.objects.active().filter(organization=organization)
    if connection_id:
        live = live.filter(pk=connection_id)
    connection = live.first()
    if connection is None:
        raise OnboardingError("connection_not_found", _("There is no active WhatsApp connection."))
    unsubscribe_error = ""
    if connection.access_token_encrypted:
        try:
            GraphClient(connection.get_access_token()).unsubscribe_app(connection.waba_id)
        except GraphError as exc:
            # Disconnecting must work even when Meta refuses (e.g. the token was revoked).
            unsubscribe_error = str(exc)
    disconnected = connection_disconnect(
        waba_id=connection.waba_id,
        reason=reason,
        request=request,
        details={"unsubscribe_error": unsubscribe_error} if unsubscribe_error else None,
    )
    analytics_record(
        name=AnalyticsEvent.Name.DISCONNECTED,
        dedupe_key=f"disconnected:{connection.pk}",
        organization=organization,
        user=getattr(request, "user", None),
        properties={"reason": reason},
    )
    return disconnected or connection


@transaction.atomic
def connection_claim(
    *, connection_id, organization: Organization, actor, request=None
) -> Connection:
    """Support assigns an orphan WABA to an organization; then the normal pipeline runs."""
    connection = Connection.objects.orphans().select_for_update().filter(pk=connection_id).first()
    if connection is None:
        raise OnboardingError(
            "not_orphan", _("This WABA is no longer an orphan (claimed or disconnected).")
        )
    connection.organization = organization
    connection.attributed_by = "claim"
    connection_bind(connection, via="claim", actor=actor, request=request)
    audit_record(
        action=AuditLog.Action.WABA_CLAIMED,
        organization=organization,
        actor=actor,
        request=request,
        target=f"waba:{connection.waba_id}",
        metadata={"waba_id": connection.waba_id, "owner_business_id": connection.owner_business_id},
    )
    pipeline_enqueue(connection.pk)
    return connection
