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

from whatsapp.conversations.numbers import numbers_health_apply
from whatsapp.core.graph import GraphClient, GraphError
from whatsapp.events import facts
from whatsapp.events.outbox import emit
from whatsapp.models import Connection, PhoneNumber

from .coexistence import sync_both
from .connections import connection_mark_connected, connection_token_invalidate, number_configured
from .retries import Blocked, Retry, pipeline_failed, pipeline_retry_later, pipeline_settled
from .signup import COEXISTENCE_FINISH

logger = logging.getLogger(__name__)

# Meta allows 10 register calls per number per 72 h; we never spend more than 3 automatically.
MAX_REGISTRATION_ATTEMPTS = 3


def lock_seconds() -> int:
    """A run's hold on the connection, renewed at every step; never longer than the stall
    time, so the sweep is never held back by a dead worker's lock."""
    return max(1, min(settings.WHATSAPP_PIPELINE_LOCK_SECONDS,
                      settings.WHATSAPP_PIPELINE_STALL_SECONDS))


def _claim(connection_id, *, scheduled: bool) -> bool:
    now = timezone.now()
    claimable = Connection.objects.filter(pk=connection_id).filter(
        Q(pipeline_locked_until__isnull=True) | Q(pipeline_locked_until__lte=now))
    if scheduled:
        # A sweep's or a retry's run waits for the attempt the schedule says (1 s of leeway
        # for Celery's countdown); a person's or Meta's trigger runs at once.
        claimable = claimable.filter(Q(pipeline_next_attempt_at__isnull=True)
                                     | Q(pipeline_next_attempt_at__lte=now + timedelta(seconds=1)))
    return bool(claimable.update(pipeline_locked_until=now + timedelta(seconds=lock_seconds())))


def pipeline_run(connection_id, *, scheduled: bool = False) -> str:
    """Runs what is left of a connection's pipeline. Returns done, awaiting_phone_selection,
    retry (another attempt is scheduled), error (no attempt left, or a person must act),
    token_invalid, busy or skipped."""
    if not _claim(connection_id, scheduled=scheduled):
        return "busy"
    try:
        connection = Connection.objects.select_related("organization").get(pk=connection_id)
        if (connection.organization_id is None
                or connection.status == Connection.Status.DISCONNECTED):
            return "skipped"
        try:
            outcome = _run(connection)
        except GraphError as exc:
            if exc.is_credential_error:
                connection_token_invalidate(connection, reason=str(exc))
                _note(connection, step=connection.pipeline_step, error=str(exc))
                return "token_invalid"
            if exc.is_transient:
                return pipeline_retry_later(connection, "meta_unavailable", str(exc))
            return pipeline_failed(connection, "meta_refused", str(exc))
        except Retry as exc:
            return pipeline_retry_later(connection, exc.code, exc.detail)
        except Blocked as exc:
            return pipeline_failed(connection, exc.code, exc.detail)
        pipeline_settled(connection)
        return outcome
    finally:
        Connection.objects.filter(pk=connection_id).update(pipeline_locked_until=None)


def _note(connection: Connection, *, step: str, error: str = "") -> None:
    # updated_at too: a connection whose pipeline moves is not stalled (the sweep, the
    # dashboard's tile); the lock is renewed, so only a dead run's lock ever runs out.
    now = timezone.now()
    connection.pipeline_step, connection.pipeline_error = step, error[:2000]
    Connection.objects.filter(pk=connection.pk).update(
        pipeline_step=step, pipeline_error=error[:2000], updated_at=now,
        pipeline_locked_until=now + timedelta(seconds=lock_seconds()))


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
            raise Blocked("no_phone_number", "The WABA has no phone number yet.")
        connection.status = Connection.Status.AWAITING_PHONE_SELECTION
        with transaction.atomic():
            connection.save(update_fields=["status", "updated_at"])
            emit(facts.connection_status(connection))
        _note(connection, step="awaiting_phone_selection")
        return "awaiting_phone_selection"

    for config in chosen:
        _note(connection, step="configure_number")
        _configure_number(connection, config, client)

    if any(c.status == PhoneNumber.Status.CONFIGURED for c in chosen):
        connection_mark_connected(connection)
    else:
        _registration_refused(chosen)
    _note(connection, step="done")
    return "done"


def _ensure_token(connection: Connection) -> str:
    # A token Meta refused (marked invalid) is not reused when a fresh one can be fetched: a
    # re-authorization through the hosted link brings no code (issue 20 §5).
    fetchable = bool(settings.META_SYSTEM_USER_TOKEN) and connection.owner_business_proven
    if connection.access_token_encrypted and (
            connection.token_status != Connection.TokenStatus.INVALID or not fetchable):
        return connection.get_access_token()
    # Hosted ES: no browser code, so fetch the business token with our system user token.
    if not settings.META_SYSTEM_USER_TOKEN:
        raise Blocked("no_system_user_token",
                      "No token: META_SYSTEM_USER_TOKEN is not set (Hosted ES).")
    if not connection.owner_business_proven:
        # Only a business Meta named as the WABA's owner may get its token fetched for us.
        raise Blocked("owner_business_unproven",
                      "No owner business proven by Meta to fetch the customer's token for.")
    token = GraphClient().system_user_access_token(connection.owner_business_id)
    if not token:
        raise Retry("token_fetch_failed", "system_user_access_tokens returned no token")
    connection.store_token(token, source="system_user")
    return token


def _sync_numbers(connection: Connection, client: GraphClient) -> list[PhoneNumber]:
    numbers = client.phone_numbers(connection.waba_id)
    phone_numbers: list[PhoneNumber] = []
    taken: list[str] = []
    for number in numbers:
        phone_number_id = str(number.get("id"))
        previous = (PhoneNumber.objects.select_related("connection")
                    .filter(phone_number_id=phone_number_id).first())
        if previous is not None and _held_by_another_tenant(previous, connection):
            # A number shared with several partners or accounts (Meta's account model, §0):
            # another organization's live connection holds it, so it is not moved here (its
            # deliveries stay with the account Meta addresses them to; routing checks that).
            logger.error("WABA %s lists number %s, live under another organization's WABA %s: "
                         "not taken over", connection.waba_id, phone_number_id,
                         previous.connection.waba_id)
            taken.append(phone_number_id)
            continue
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
                # Only when Graph lists one (account model phase 2); never erased by a listing
                # without it.
                **({"waac_id": str(number["waac_id"])[:64]} if number.get("waac_id") else {}),
            },
        )
        phone_numbers.append(config)
    if taken and not phone_numbers:
        raise Blocked("number_taken", f"Number(s) {', '.join(taken)} already connected by "
                                      "another organization.")
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


def _held_by_another_tenant(number: PhoneNumber, connection: Connection) -> bool:
    held_by = number.connection
    return (held_by.pk != connection.pk and held_by.status != Connection.Status.DISCONNECTED
            and held_by.organization_id not in (None, connection.organization_id))


def _is_coexistence(connection: Connection, config: PhoneNumber) -> bool:
    return config.is_on_biz_app or connection.finish_event == COEXISTENCE_FINISH


def _configure_number(connection: Connection, config: PhoneNumber, client: GraphClient) -> None:
    if config.status == PhoneNumber.Status.CONFIGURED and not _is_coexistence(connection, config):
        return
    if _is_coexistence(connection, config):
        # Coexistence numbers are already registered on the phone: never call /register.
        config.registration_status = PhoneNumber.RegistrationStatus.NOT_NEEDED
        _set_config_configured(config)
        sync_both(connection, config, client)
        return
    _register(config, client)
    if config.registration_status == PhoneNumber.RegistrationStatus.REGISTERED:
        _set_config_configured(config)


def _registration_refused(chosen: list[PhoneNumber]) -> None:
    """No chosen number could be registered and Meta said no (not a transient failure): a
    person must act, so the connection goes to `error` instead of `connecting` forever."""
    R = PhoneNumber.RegistrationStatus
    refused = [c for c in chosen if c.registration_status in (R.BLOCKED, R.FAILED)]
    if not refused or len(refused) < len(chosen):
        return
    blocked = any(c.registration_status == R.BLOCKED for c in refused)
    raise Blocked("133016" if blocked else "registration_failed",
                  "; ".join(c.registration_error for c in refused if c.registration_error))


def _set_config_configured(config: PhoneNumber) -> None:
    if config.status != PhoneNumber.Status.CONFIGURED:
        config.status = PhoneNumber.Status.CONFIGURED
        config.save(update_fields=["status", "registration_status", "updated_at"])
        number_configured(config)


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
