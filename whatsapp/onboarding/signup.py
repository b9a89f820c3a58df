"""Embedded Signup sessions: the tracking code, the launch `extras`, and what the browser
reports back (cancel, Meta error), up to the onboarding being completed."""

import json
import logging
import uuid
from datetime import timedelta
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AuditLog
from audit.services import audit_record
from organizations.models import Organization
from whatsapp.models import AnalyticsEvent, Onboarding, flags

from . import tracking
from .analytics import analytics_record

logger = logging.getLogger(__name__)


COEXISTENCE_FINISH = "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING"


def onboarding_start(*, organization: Organization, user, redirect_path: str) -> Onboarding:
    """Creates a pending onboarding with a fresh tracking code, in the DB and in Redis."""
    ttl = settings.WHATSAPP_ONBOARDING_TTL
    onboarding = Onboarding.objects.create(
        organization=organization,
        created_by=user if getattr(user, "is_authenticated", False) else None,
        tracking_code=uuid.uuid4(),
        redirect_path=redirect_path,
        expires_at=timezone.now() + timedelta(seconds=ttl),
        # The rollout arm this onboarding runs under (the funnel is split by it).
        variant=Onboarding.Variant.HOSTED_LINK
        if flags.flag_enabled(flags.V2_ONBOARDING, organization) else Onboarding.Variant.POPUP,
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


COEXISTENCE_FEATURE = "whatsapp_business_app_onboarding"


def launch_extras(version: str | None = None) -> dict:
    """The `extras` both launchers send, without the tracking code, per
    META_EMBEDDED_SIGNUP_VERSION.

    v4 (META-PLATFORM.md §0): Meta picks v4 by the login configuration and keeps `extras`
    "purposely empty" (`{setup: {}}`), but coexistence is still chosen with `featureType`, and
    Meta's own builder adds `version: "v4"`. No `sessionInfoVersion`: a v2 key that v4 ignores.
    v3: seed 000 §6.1 exactly, for whoever still needs it (Meta now runs it as Cloud API only).
    """
    version = version or settings.META_EMBEDDED_SIGNUP_VERSION
    if version == "v3":
        return {"featureType": COEXISTENCE_FEATURE, "sessionInfoVersion": "3", "version": "v3"}
    return {"setup": {}, "featureType": COEXISTENCE_FEATURE, "version": "v4"}


def onboarding_extras(onboarding: Onboarding) -> dict:
    """The launch `extras` carrying the tracking code as sessionInfo (harmless to Meta; our
    own signal when it comes back). The settings page adds it the same way for the popup."""
    return {**launch_extras(), "sessionInfo": {"trackingCode": str(onboarding.tracking_code)}}


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


class OnboardingError(Exception):
    """An onboarding step that cannot be applied. `code` is stable (the API maps it to an HTTP
    status, `whatsapp.api.views.ONBOARDING_ERROR_STATUS`); `message` is for people, in pt-BR."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def onboarding_for_callback(*, organization: Organization, state: str,
                            lock: bool = True) -> Onboarding:
    """The caller's onboarding for `state`, locked. Another org's code reads as not found.

    `lock=False` is for checks made outside a transaction (SELECT FOR UPDATE needs one).
    """
    onboarding = onboarding_for_code(state, lock=lock)
    if onboarding is None or onboarding.organization_id != organization.pk:
        raise OnboardingError("unknown_session", _("Unknown onboarding session (state)."))
    onboarding.expire_if_due()
    if onboarding.status == Onboarding.Status.EXPIRED:
        raise OnboardingError("session_expired", _("Session expired, please try again."))
    return onboarding


@transaction.atomic
def onboarding_browser_outcome(*, organization: Organization, state: str, event: str,
                               current_step: str = "", error_code: str = "",
                               error_message: str = "", session_id: str = "") -> Onboarding:
    """Records a CANCEL (with its step) or a Meta error reported by the popup."""
    onboarding = onboarding_for_callback(organization=organization, state=state)
    if onboarding.status != Onboarding.Status.PENDING:
        raise OnboardingError("session_finished", _("This onboarding session is already finished."))
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


# Callback refusals that end the signup on our side (the tenant sees them as errors, and the
# funnel counts them as failed); an unknown, expired or finished session changes nothing.
SERVER_FAILURES = ("code_refused", "waba_not_granted", "meta_unavailable", "waba_taken")


@transaction.atomic
def onboarding_fail(*, organization: Organization, state: str,
                    error: OnboardingError) -> Onboarding | None:
    """The callback refused what the popup relayed: the still-pending onboarding becomes
    failed with the refusal's code (the page says what to do), and `Embedded Signup Failed`
    is recorded as for the popup's own errors. Returns it, or None when nothing changed."""
    if error.code not in SERVER_FAILURES:
        return None
    onboarding = onboarding_for_code(state, lock=True)
    if (onboarding is None or onboarding.organization_id != organization.pk
            or onboarding.status != Onboarding.Status.PENDING):
        return None
    onboarding.status = Onboarding.Status.FAILED
    onboarding.error_code = error.code
    onboarding.error_message = error.message[:2000]
    onboarding.save(update_fields=["status", "error_code", "error_message"])
    analytics_record(
        name=AnalyticsEvent.Name.SIGNUP_FAILED, dedupe_key=f"failed:{onboarding.pk}",
        organization=organization, user=onboarding.created_by,
        properties={"error_code": error.code, "step_failed": "callback", "source": "server"},
    )
    return onboarding


def onboarding_finished_by_browser(*, organization: Organization, state: str) -> Onboarding | None:
    """The caller's onboarding for `state` when a FINISH relay already completed it: a second
    relay (double submit, retried request) is answered from what is stored, never by a second
    code exchange at Meta."""
    onboarding = onboarding_for_code(state)
    if (onboarding is not None and onboarding.organization_id == organization.pk
            and onboarding.status == Onboarding.Status.COMPLETED and onboarding.finish_event):
        return onboarding
    return None


@transaction.atomic
def onboarding_cancel(*, onboarding_id, actor, request=None) -> Onboarding:
    """Support cancels a pending onboarding: the tenant's page then offers to try again, and a
    late Meta signal with its tracking code no longer attaches to it. Audited with the user."""
    onboarding = (Onboarding.objects.select_for_update().select_related("organization")
                  .filter(pk=onboarding_id).first())
    if onboarding is None:
        raise OnboardingError("unknown_session", _("Unknown onboarding session (state)."))
    onboarding.expire_if_due()
    if onboarding.status != Onboarding.Status.PENDING:
        raise OnboardingError("session_finished", _(
            "Onboarding %(code)s is %(status)s: only a pending onboarding can be cancelled."
        ) % {"code": onboarding.tracking_code, "status": onboarding.get_status_display()})
    onboarding.status = Onboarding.Status.CANCELLED
    onboarding.save(update_fields=["status"])
    analytics_record(
        name=AnalyticsEvent.Name.SIGNUP_CANCELLED, dedupe_key=f"cancelled:{onboarding.pk}",
        organization=onboarding.organization, user=onboarding.created_by,
        properties={"step_cancelled": onboarding.current_step, "cancelled_by": "support"},
    )
    audit_record(
        action=AuditLog.Action.ONBOARDING_CANCELLED, organization=onboarding.organization,
        actor=actor, request=request, target=f"onboarding:{onboarding.tracking_code}",
        metadata={"tracking_code": str(onboarding.tracking_code),
                  "step": onboarding.current_step},
    )
    code = onboarding.tracking_code
    transaction.on_commit(lambda: tracking.forget(code))
    return onboarding


def signup_enabled_for(organization: Organization) -> bool:
    """Feature flag `whatsapp_embedded_signup_enabled` (seed 001); see the back-office flags."""
    return flags.flag_enabled(flags.SIGNUP_ENABLED, organization)
