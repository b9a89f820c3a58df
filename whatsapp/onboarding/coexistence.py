"""Coexistence syncs (META-PLATFORM §3): after a number already on the WhatsApp Business app
is connected, Meta sends its contacts (`smb_app_state_sync`) and up to 6 months of history
(`history`) when asked once, within 24 h of the onboarding. Each request is made exactly once;
each kind's outcome is stored (and alerted when it failed) independently of the other's: a
contacts sync Meta refused never silently skips the history."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AuditLog
from audit.services import audit_record
from whatsapp.core.graph import GraphClient, GraphError
from whatsapp.models import Connection, PhoneNumber

from .connections import pipeline_enqueue
from .signup import OnboardingError

SYNC_WINDOW = timedelta(hours=24)


def sync_both(connection: Connection, config: PhoneNumber, client: GraphClient) -> None:
    """Asks for the contacts, then the history, each once: a failed contacts request is
    recorded (and alerted) and the history is still asked for."""
    deadline = sync_deadline(connection)
    sync_request(config, client, kind="contacts", sync_type="smb_app_state_sync",
                 deadline=deadline)
    sync_request(config, client, kind="history", sync_type="history", deadline=deadline)


def sync_request(
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
    if error:
        config.sync_error = f"{kind}: {error}"[:2000]
    elif config.sync_error.startswith(f"{kind}: "):
        config.sync_error = ""  # this kind recovered; another kind's error stays visible
    config.save(update_fields=[f"{kind}_sync_status", "sync_error", "updated_at", *(extra or [])])
