"""The onboarding pipeline that follows a bound connection (SPEC §3, META-PLATFORM §3).

token → subscribe the app to the WABA → list numbers → choose (one number, or the admin picks)
→ per chosen number: Cloud API registration with a PIN, or coexistence sync (contacts, then
history), each exactly once. Every step reads its marker from the database first, so running
the pipeline again (a retry, a second trigger, a worker that died) resumes instead of repeating.
"""

import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AuditLog
from audit.services import audit_record
from whatsapp.conversations.numbers import numbers_health_apply
from whatsapp.core.graph import GraphClient, GraphError
from whatsapp.models import Connection, PhoneNumber

from .connections import (
    connection_mark_connected,
    connection_token_invalidate,
    number_configured,
    pipeline_enqueue,
)
from .signup import COEXISTENCE_FINISH, OnboardingError

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
SYNC_WINDOW = timedelta(hours=24)
# Meta allows 10 register calls per number per 72 h; we never spend more than 3 automatically.
MAX_REGISTRATION_ATTEMPTS = 3


class Blocked(Exception):
    """The pipeline cannot go on without a person (support, or the admin choosing a number)."""


class Retry(Exception):
    """A transient failure: run the pipeline again later."""


def _claim(connection_id) -> bool:
    now = timezone.now()
    return bool(
        Connection.objects.filter(pk=connection_id)
        .filter(Q(pipeline_locked_until__isnull=True) | Q(pipeline_locked_until__lte=now))
        .update(pipeline_locked_until=now + LEASE)
    )


def pipeline_run(connection_id) -> str:
    """Runs what is left of a connection's pipeline. Returns done, awaiting_phone_selection,
    retry, blocked, token_invalid, busy or skipped."""
    if not _claim(connection_id):
        return "busy"
    try:
        connection = Connection.objects.select_related("organization").get(pk=connection_id)
        if (connection.organization_id is None
                or connection.status == Connection.Status.DISCONNECTED):
            return "skipped"
        try:
            return _run(connection)
        except GraphError as exc:
            if exc.is_credential_error:
                connection_token_invalidate(connection, reason=str(exc))
                _note(connection, step=connection.pipeline_step, error=str(exc))
                return "token_invalid"
            _note(connection, step=connection.pipeline_step, error=str(exc))
            return "retry" if exc.is_transient else "blocked"
        except Retry as exc:
            _note(connection, step=connection.pipeline_step, error=str(exc))
            return "retry"
        except Blocked as exc:
            _note(connection, step=connection.pipeline_step, error=str(exc))
            return "blocked"
    finally:
        Connection.objects.filter(pk=connection_id).update(pipeline_locked_until=None)


def _note(connection: Connection, *, step: str, error: str = "") -> None:
    # updated_at too: a connection whose pipeline moves is not stalled (the dashboard's tile).
    connection.pipeline_step, connection.pipeline_error = step, error[:2000]
    Connection.objects.filter(pk=connection.pk).update(pipeline_step=step,
                                                       pipeline_error=error[:2000],
                                                       updated_at=timezone.now())


def _run(connection: Connection) -> str:
    _note(connection, step="token")
    client = GraphClient(_ensure_token(connection))
    if connection.subscribed_at is None:
        _note(connection, step="subscribe")
        client.subscribe_app(connection.waba_id)
        connection.subscribed_at = timezone.now()
        connection.save(update_fields=["subscribed_at", "updated_at"])

    _note(connection, step="phone_numbers")
    phone_numbers = _sync_numbers(connection, client)
    chosen = [c for c in phone_numbers if c.status in (PhoneNumber.Status.CONFIGURING,
                                                 PhoneNumber.Status.CONFIGURED)]
    if not chosen:
        if not phone_numbers:
            raise Blocked("A WABA ainda não tem número de telefone.")
        connection.status = Connection.Status.AWAITING_PHONE_SELECTION
        connection.save(update_fields=["status", "updated_at"])
        _note(connection, step="awaiting_phone_selection")
        return "awaiting_phone_selection"

    for config in chosen:
        _note(connection, step="configure_number")
        _configure_number(connection, config, client)

    if any(c.status == PhoneNumber.Status.CONFIGURED for c in chosen):
        connection_mark_connected(connection)
    _note(connection, step="done")
    return "done"


def _ensure_token(connection: Connection) -> str:
    if connection.access_token_encrypted:
        return connection.get_access_token()
    # Hosted ES: no browser code, so fetch the business token with our system user token.
    if not settings.META_SYSTEM_USER_TOKEN:
        raise Blocked("Sem token: configure META_SYSTEM_USER_TOKEN ou reconecte pelo pop-up.")
    if not connection.owner_business_proven:
        # Only a business Meta named as the WABA's owner may get its token fetched for us.
        raise Blocked("Sem owner_business_id comprovado pela Meta para buscar o token do "
                      "cliente.")
    token = GraphClient().system_user_access_token(connection.owner_business_id)
    if not token:
        raise Retry("system_user_access_tokens returned no token")
    connection.store_token(token, source="system_user")
    return token


def _sync_numbers(connection: Connection, client: GraphClient) -> list[PhoneNumber]:
    numbers = client.phone_numbers(connection.waba_id)
    phone_numbers: list[PhoneNumber] = []
    for number in numbers:
        phone_number_id = str(number.get("id"))
        previous = PhoneNumber.objects.filter(phone_number_id=phone_number_id).first()
        if previous is not None and previous.connection_id != connection.pk:
            # The number was connected before (a reconnect): start its setup afresh.
            previous.reset_for_new_connection()
        config, _ = PhoneNumber.objects.update_or_create(
            phone_number_id=phone_number_id,
            defaults={
                "connection": connection,
                "organization": connection.organization,
                "display_phone_number": str(number.get("display_phone_number") or ""),
                "verified_name": str(number.get("verified_name") or ""),
                "quality_rating": str(number.get("quality_rating") or ""),
                "platform_type": str(number.get("platform_type") or ""),
                "code_verification_status": str(number.get("code_verification_status") or ""),
                "is_on_biz_app": bool(number.get("is_on_biz_app")),
            },
        )
        phone_numbers.append(config)
    numbers_health_apply(connection, numbers)
    if phone_numbers:
        coexistence = connection.finish_event == COEXISTENCE_FINISH or any(
            c.is_on_biz_app for c in phone_numbers
        )
        if connection.is_coexistence != coexistence:
            connection.is_coexistence = coexistence
            connection.save(update_fields=["is_coexistence", "updated_at"])
    already_chosen = any(
        c.status in (PhoneNumber.Status.CONFIGURING, PhoneNumber.Status.CONFIGURED)
        for c in phone_numbers
    )
    if not already_chosen:
        wanted = [
            c for c in phone_numbers if c.phone_number_id == connection.requested_phone_number_id
        ]
        if len(phone_numbers) == 1:
            wanted = phone_numbers
        for config in wanted:
            config.status = PhoneNumber.Status.CONFIGURING
            config.save(update_fields=["status", "updated_at"])
    return phone_numbers


def _is_coexistence(connection: Connection, config: PhoneNumber) -> bool:
    return config.is_on_biz_app or connection.finish_event == COEXISTENCE_FINISH


def _configure_number(connection: Connection, config: PhoneNumber, client: GraphClient) -> None:
    if config.status == PhoneNumber.Status.CONFIGURED and not _is_coexistence(connection, config):
        return
    if _is_coexistence(connection, config):
        # Coexistence numbers are already registered on the phone: never call /register.
        config.registration_status = PhoneNumber.RegistrationStatus.NOT_NEEDED
        _set_config_configured(config)
        deadline = sync_deadline(connection)
        _request_sync(
            config, client, kind="contacts", sync_type="smb_app_state_sync", deadline=deadline
        )
        if config.contacts_sync_status == PhoneNumber.SyncStatus.REQUESTED:
            _request_sync(config, client, kind="history", sync_type="history", deadline=deadline)
        return
    _register(config, client)
    if config.registration_status == PhoneNumber.RegistrationStatus.REGISTERED:
        _set_config_configured(config)


def _set_config_configured(config: PhoneNumber) -> None:
    if config.status != PhoneNumber.Status.CONFIGURED:
        config.status = PhoneNumber.Status.CONFIGURED
        config.save(update_fields=["status", "registration_status", "updated_at"])
        number_configured(config)


def _request_sync(
    config: PhoneNumber, client: GraphClient, *, kind: str, sync_type: str, deadline
) -> None:
    """Calls smb_app_data once. The row is marked `requesting` before the call, so a crash in
    the middle leaves a visible `unknown` for support instead of a blind second request."""
    status_field = f"{kind}_sync_status"
    current = getattr(config, status_field)
    S = PhoneNumber.SyncStatus
    if current == S.REQUESTING:
        _set_sync(
            config, kind, S.UNKNOWN, error="Interrompido durante a chamada; confirme com a Meta."
        )
        return
    if current not in (S.NOT_NEEDED, S.PENDING):
        return
    if timezone.now() > deadline:
        _set_sync(config, kind, S.EXPIRED, error="Janela de 24 h para sincronizar expirou.")
        return
    claimed = PhoneNumber.objects.filter(
        pk=config.pk, **{f"{status_field}__in": [S.NOT_NEEDED, S.PENDING]}
    ).update(**{status_field: S.REQUESTING})
    if not claimed:
        config.refresh_from_db()
        return
    try:
        request_id = client.smb_app_data(config.phone_number_id, sync_type)
    except GraphError as exc:
        if exc.status == 0:
            _set_sync(config, kind, S.UNKNOWN, error=str(exc))
            return
        if exc.is_transient:
            # Meta answered with an error, so it did not accept the request: safe to ask again.
            _set_sync(config, kind, S.PENDING, error=str(exc))
            raise
        _set_sync(config, kind, S.FAILED, error=str(exc))
        return
    setattr(config, f"{kind}_sync_request_id", request_id)
    setattr(config, f"{kind}_sync_requested_at", timezone.now())
    _set_sync(
        config, kind, S.REQUESTED, extra=[f"{kind}_sync_request_id", f"{kind}_sync_requested_at"]
    )


def sync_deadline(connection: Connection):
    """Meta accepts smb_app_data only within 24 h of the onboarding."""
    return (connection.connected_at or connection.created_at) + SYNC_WINDOW


@transaction.atomic
def sync_rerequest(*, phone_number_id: int, actor, request=None) -> list[str]:
    """Support asks again for a coexistence sync Meta refused (status `failed`), while Meta
    still allows it: within the 24 h window and only if Meta never accepted a request of
    that kind (no request id). The pipeline then makes the request. Returns the kinds."""
    config = (PhoneNumber.objects.select_for_update(of=("self",))
              .select_related("connection__organization").get(pk=phone_number_id))
    connection, S = config.connection, PhoneNumber.SyncStatus
    label = config.display_phone_number or config.phone_number_id
    kinds = [k for k in ("contacts", "history") if getattr(config, f"{k}_sync_status") == S.FAILED]
    if not kinds:
        raise OnboardingError("sync_not_failed", _(
            "%(number)s: no failed sync to request again.") % {"number": label})
    if connection.status == Connection.Status.DISCONNECTED or connection.organization_id is None:
        raise OnboardingError("connection_not_found", _(
            "%(number)s: the connection is disconnected or has no organization.")
            % {"number": label})
    if any(getattr(config, f"{k}_sync_request_id") for k in kinds):
        raise OnboardingError("sync_already_requested", _(
            "%(number)s: Meta already accepted a request of this sync; it allows only one.")
            % {"number": label})
    if timezone.now() > sync_deadline(connection):
        raise OnboardingError("sync_window_closed", _(
            "%(number)s: Meta allows the sync only within 24 hours of the onboarding; the "
            "window closed.") % {"number": label})
    for kind in kinds:
        setattr(config, f"{kind}_sync_status", S.PENDING)
    config.sync_error = ""
    config.save(update_fields=[*(f"{k}_sync_status" for k in kinds), "sync_error",
                               "updated_at"])
    audit_record(
        action=AuditLog.Action.SYNC_REREQUESTED, organization=connection.organization,
        actor=actor, request=request, target=f"waba:{connection.waba_id}",
        metadata={"phone_number_id": config.phone_number_id, "kinds": kinds},
    )
    pipeline_enqueue(connection.pk)
    return kinds


def _set_sync(
    config: PhoneNumber, kind: str, status: str, *, error: str = "", extra: list[str] | None = None
) -> None:
    setattr(config, f"{kind}_sync_status", status)
    config.sync_error = error[:2000]
    config.save(update_fields=[f"{kind}_sync_status", "sync_error", "updated_at", *(extra or [])])


def _register(config: PhoneNumber, client: GraphClient) -> None:
    R = PhoneNumber.RegistrationStatus
    if config.registration_status in (R.REGISTERED, R.BLOCKED, R.FAILED):
        return
    if config.registration_attempts >= MAX_REGISTRATION_ATTEMPTS:
        config.registration_status = R.FAILED
        config.registration_error = "Limite de tentativas automáticas atingido; fale com o suporte."
        config.save(update_fields=["registration_status", "registration_error", "updated_at"])
        return
    if not config.registration_pin_encrypted:
        config.set_pin(f"{secrets.randbelow(10**6):06d}")
    # Count the attempt before calling: a crash must not buy an extra try against Meta's cap.
    config.registration_attempts += 1
    config.registration_status = R.PENDING
    config.save(
        update_fields=[
            "registration_pin_encrypted",
            "registration_attempts",
            "registration_status",
            "updated_at",
        ]
    )
    try:
        client.register_phone(config.phone_number_id, config.get_pin())
    except GraphError as exc:
        config.registration_error = str(exc)[:2000]
        if exc.code == 133016:
            config.registration_status = R.BLOCKED
        elif not exc.is_transient:
            config.registration_status = R.FAILED
        config.save(update_fields=["registration_status", "registration_error", "updated_at"])
        if exc.is_transient:
            raise
        return
    config.registration_status = R.REGISTERED
    config.registered_at = timezone.now()
    config.registration_error = ""
    config.save(
        update_fields=["registration_status", "registered_at", "registration_error", "updated_at"]
    )
