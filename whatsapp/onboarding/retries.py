"""How a connection's pipeline ends when a step fails (issue 20 "pipelines that finish").

A transient failure (Meta unavailable, the network) is retried on WHATSAPP_PIPELINE_RETRY_DELAYS;
the connection keeps `connecting` and says when the next attempt runs. After the last attempt,
or at once when a person must act (no number, Meta refused the registration, …), the connection
is `error` with a machine code (ERROR_CODES) whose pt-BR text the tenant reads, an alert fires
(ops.alerts), support sees it on the dashboard, and the tenant's "Tentar novamente"
(`POST connection/retry`) or support's action runs it again. A beat sweep resumes every
connection whose pipeline made no progress for WHATSAPP_PIPELINE_STALL_SECONDS (a lost enqueue,
a worker that died mid-run, a retry Celery lost).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AuditLog
from audit.services import audit_record
from organizations.models import Organization
from whatsapp.core import jobs
from whatsapp.models import AnalyticsEvent, Connection, PhoneNumber

from .analytics import analytics_record
from .signup import OnboardingError

logger = logging.getLogger(__name__)


class PipelineStop(Exception):
    """A step cannot go on; `code` names why (ERROR_CODES), `detail` is the technical reason."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code, self.detail = code, detail or code


class Blocked(PipelineStop):
    """The pipeline cannot go on without a person: the connection goes to `error` at once."""


class Retry(PipelineStop):
    """A transient failure: run the pipeline again later (until the attempts run out)."""


# The codes a failed pipeline leaves in Connection.error_code; the tenant reads each one's pt-BR
# text with what to do (whatsapp.api.failures), the technical detail stays in pipeline_error.
ERROR_CODES = ("no_phone_number", "no_system_user_token", "owner_business_unproven",
               "token_fetch_failed", "133016", "registration_failed", "number_taken",
               "meta_refused", "meta_unavailable")


def max_attempts() -> int:
    """Automatic runs of a transiently failing pipeline: the first one and each retry."""
    return len(settings.WHATSAPP_PIPELINE_RETRY_DELAYS) + 1


def pipeline_settled(connection: Connection) -> None:
    """A run that did not fail: the retry count starts over."""
    if connection.pipeline_attempts or connection.pipeline_next_attempt_at:
        Connection.objects.filter(pk=connection.pk).update(pipeline_attempts=0,
                                                           pipeline_next_attempt_at=None)


def pipeline_retry_later(connection: Connection, code: str, detail: str) -> str:
    """Schedules the next automatic attempt, or fails the connection after the last one."""
    attempts = connection.pipeline_attempts + 1
    delays = settings.WHATSAPP_PIPELINE_RETRY_DELAYS
    if attempts > len(delays):
        return pipeline_failed(connection, code, detail)
    now = timezone.now()
    next_at = now + timedelta(seconds=delays[attempts - 1])
    Connection.objects.filter(pk=connection.pk).update(
        pipeline_attempts=attempts, pipeline_next_attempt_at=next_at,
        pipeline_error=f"[{code}] {detail}"[:2000], updated_at=now)
    connection.pipeline_attempts, connection.pipeline_next_attempt_at = attempts, next_at
    logger.info("Pipeline of WABA %s: %s; attempt %d of %d at %s", connection.waba_id, code,
                attempts + 1, max_attempts(), next_at.isoformat())
    return "retry"


def pipeline_failed(connection: Connection, code: str, detail: str) -> str:
    """The connection is `error` with `code`: audited, counted as a failed signup, alerted
    (ops.alerts), shown to the tenant with "Tentar novamente"."""
    with transaction.atomic():
        changed = Connection.objects.filter(pk=connection.pk).exclude(
            status__in=[Connection.Status.CONNECTED, Connection.Status.DISCONNECTED],
        ).update(status=Connection.Status.ERROR, error_code=code, error_message="",
                 pipeline_next_attempt_at=None,
                 pipeline_error=f"[{code}] {detail}"[:2000], updated_at=timezone.now())
        if not changed:
            return "skipped"
        audit_record(action=AuditLog.Action.PIPELINE_FAILED, organization=connection.organization,
                     actor_label="system", target=f"waba:{connection.waba_id}",
                     metadata={"code": code, "step": connection.pipeline_step,
                               "attempts": connection.pipeline_attempts,
                               "detail": detail[:500]})
        analytics_record(name=AnalyticsEvent.Name.SIGNUP_FAILED,
                         dedupe_key=f"pipeline_failed:{connection.pk}:{connection.updated_at}",
                         organization=connection.organization,
                         properties={"errorCode": code, "step": connection.pipeline_step,
                                     "source": "pipeline"})
    logger.warning("Pipeline of WABA %s failed: %s", connection.waba_id, code)
    return "error"


@transaction.atomic
def pipeline_restart(connection: Connection, *, actor, request=None,
                     action: str = AuditLog.Action.PIPELINE_RESUMED) -> Connection:
    """Runs a failed (`error`) or stalled (`connecting`) connection's pipeline again from its
    markers, with a fresh set of automatic attempts. Audited; the run starts after commit."""
    if connection.status not in (Connection.Status.CONNECTING, Connection.Status.ERROR):
        raise OnboardingError("not_resumable", _(
            "WABA %(waba)s is %(status)s: only a connection that is connecting or in error "
            "can be resumed.") % {"waba": connection.waba_id,
                                  "status": connection.get_status_display()})
    audit_record(
        action=action, organization=connection.organization, actor=actor, request=request,
        target=f"waba:{connection.waba_id}",
        metadata={"waba_id": connection.waba_id, "status": connection.status,
                  "step": connection.pipeline_step, "error_code": connection.error_code,
                  "error": connection.pipeline_error[:500]},
    )
    Connection.objects.filter(pk=connection.pk).update(
        status=Connection.Status.CONNECTING, error_code="", error_message="",
        pipeline_attempts=0, pipeline_next_attempt_at=None, updated_at=timezone.now())
    # A person decided to try again (e.g. 72 h after Meta's 133016): the chosen numbers'
    # registration gets a fresh set of automatic attempts.
    R = PhoneNumber.RegistrationStatus
    PhoneNumber.objects.filter(connection=connection,
                               registration_status__in=[R.BLOCKED, R.FAILED]).update(
        registration_status=R.PENDING, registration_attempts=0, updated_at=timezone.now())
    connection.refresh_from_db()
    transaction.on_commit(
        lambda: jobs.enqueue_quietly("run_connection_pipeline", str(connection.pk)))
    return connection


@transaction.atomic
def pipeline_retry_by_tenant(*, organization: Organization, connection_id=None,
                             request=None) -> Connection:
    """The tenant's "Tentar novamente" on a connection in `error` (or stalled)."""
    candidates = Connection.objects.filter(
        organization=organization,
        status__in=[Connection.Status.ERROR, Connection.Status.CONNECTING])
    if connection_id:
        candidates = candidates.filter(pk=connection_id)
    connection = candidates.select_for_update(of=("self",)).order_by("-created_at").first()
    if connection is None:
        raise OnboardingError("connection_not_found", _(
            "There is no WhatsApp connection to try again."))
    return pipeline_restart(connection, actor=getattr(request, "user", None), request=request,
                            action=AuditLog.Action.PIPELINE_RETRIED)


def pipelines_sweep(now=None) -> list[str]:
    """Enqueues every tenant connection still `connecting` whose pipeline made no progress
    for WHATSAPP_PIPELINE_STALL_SECONDS and is not waiting for a scheduled attempt, or whose
    scheduled attempt is overdue (a lost enqueue, a dead worker, a retry Celery lost)."""
    now = now or timezone.now()
    quiet_since = now - timedelta(seconds=settings.WHATSAPP_PIPELINE_STALL_SECONDS)
    due = (Connection.objects.filter(organization__isnull=False,
                                     status=Connection.Status.CONNECTING,
                                     updated_at__lte=quiet_since)
           .filter(Q(pipeline_locked_until__isnull=True) | Q(pipeline_locked_until__lte=now))
           .filter(Q(pipeline_next_attempt_at__isnull=True)
                   | Q(pipeline_next_attempt_at__lte=now))
           .values_list("pk", flat=True))
    resumed = [str(pk) for pk in due]
    for pk in resumed:
        jobs.enqueue_quietly("run_connection_pipeline", pk, True)
    if resumed:
        logger.info("Pipeline sweep resumed %d connection(s)", len(resumed))
    return resumed


def next_attempt_countdown(connection_id) -> float | None:
    """Seconds until the connection's scheduled attempt (None when none is scheduled)."""
    next_at = (Connection.objects.filter(pk=connection_id)
               .values_list("pipeline_next_attempt_at", flat=True).first())
    if next_at is None:
        return None
    return max(1.0, (next_at - timezone.now()).total_seconds())
