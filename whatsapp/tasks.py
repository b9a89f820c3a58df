"""Every Celery task of the app (outer ring): thin bodies that take ids and call a room.

The names (`whatsapp.tasks.*`) are a contract: beat schedules and queued messages refer to
them. Each body imports its room function where it runs, so this module can be imported by
`WhatsappConfig.ready()` (registering every task in every process) without importing the
rooms, and no room ever imports this module: rooms enqueue by name (`whatsapp.core.jobs`).
"""

import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)


def _retry_countdown(log_id: int) -> int:
    """Seconds until the failed row's next attempt (the row's next_attempt_at is the truth)."""
    from whatsapp.models import WebhookLog

    next_at = WebhookLog.objects.values_list("next_attempt_at", flat=True).get(pk=log_id)
    return max(1, int((next_at - timezone.now()).total_seconds()))


def _process(task, log_id: int) -> str:
    from whatsapp.models import WebhookLog
    from whatsapp.webhooks.process import webhook_process

    status = webhook_process(log_id)
    if status == WebhookLog.Status.FAILED and not settings.CELERY_TASK_ALWAYS_EAGER:
        raise task.retry(countdown=_retry_countdown(log_id))
    return status


# One task per lane (whatsapp/core/lanes.py), each routed to its lane's queue by name
# (config/settings/lanes.py): the same work, never in the same queue.
@shared_task(bind=True, max_retries=None)
def process_webhook(self, log_id: int) -> str:
    """One live delivery (messages, statuses, events), outside the inbox."""
    return _process(self, log_id)


@shared_task(bind=True, max_retries=None)
def process_webhook_bulk(self, log_id: int) -> str:
    """One bulk delivery (history, contacts sync), outside the inbox."""
    return _process(self, log_id)


def _drain(lane: str, slot: int, token: str) -> int:
    from whatsapp.core.lanes import PROCESS_TASK
    from whatsapp.models import WebhookLog
    from whatsapp.webhooks import inbox

    retry = {"process_webhook": process_webhook,
             "process_webhook_bulk": process_webhook_bulk}[PROCESS_TASK[lane]]

    def retry_failed(log_id: int, status: str) -> None:
        if status != WebhookLog.Status.FAILED:
            return
        try:
            retry.apply_async((log_id,), countdown=_retry_countdown(log_id))
        except Exception:
            # The row keeps next_attempt_at: the sweeper retries it when it is due.
            logger.warning("Could not schedule the retry of webhook %s", log_id)

    return inbox.drain(lane, slot, token, on_result=retry_failed)


@shared_task
def drain_webhook_inbox(slot: int, token: str) -> int:
    """Processes the deliveries announced in the live inbox (whatsapp/webhooks/inbox.py)."""
    return _drain("live", slot, token)


@shared_task
def drain_webhook_bulk(slot: int, token: str) -> int:
    """Processes the deliveries announced in the bulk inbox (whatsapp/webhooks/inbox.py)."""
    return _drain("bulk", slot, token)


@shared_task
def sweep_webhooks() -> int:
    from whatsapp.webhooks.intake import webhooks_sweep

    return webhooks_sweep()


# One beat run purges at most this many batches of 1,000 (well inside the task time limit);
# the next hourly run goes on where it stopped.
PURGE_BATCHES_PER_RUN = 200


@shared_task
def purge_webhook_bodies() -> int:
    """Retention (LGPD): removes processed deliveries' raw bodies older than
    WHATSAPP_WEBHOOK_RETENTION_DAYS (whatsapp/webhooks/retention.py)."""
    from whatsapp.webhooks.retention import webhook_bodies_purge

    return webhook_bodies_purge(max_batches=PURGE_BATCHES_PER_RUN).purged


@shared_task
def expire_onboardings() -> int:
    from whatsapp.models import Onboarding

    return Onboarding.objects.expire_due()


@shared_task
def notify_token_expiry() -> int:
    """E-mails the admins of organizations whose token expires within 30 / 7 days, once per
    threshold (whatsapp/onboarding/token_expiry.py)."""
    from whatsapp.onboarding.token_expiry import token_expiry_notices_send

    return len(token_expiry_notices_send())


@shared_task(bind=True, max_retries=None)
def run_connection_pipeline(self, connection_id: str, scheduled: bool = False) -> str:
    """Runs what is left of a connection's onboarding pipeline. A transient failure comes back
    on WHATSAPP_PIPELINE_RETRY_DELAYS (the connection row counts the attempts and says when;
    sweep_pipelines runs it if this retry is lost)."""
    from whatsapp.onboarding.pipeline import pipeline_run
    from whatsapp.onboarding.retries import next_attempt_countdown

    outcome = pipeline_run(connection_id, scheduled=scheduled or self.request.retries > 0)
    countdown = next_attempt_countdown(connection_id) if outcome == "retry" else None
    if countdown is not None and not settings.CELERY_TASK_ALWAYS_EAGER:
        raise self.retry(countdown=countdown)
    return outcome


@shared_task
def sweep_pipelines() -> int:
    """Resumes the pipelines that made no progress for WHATSAPP_PIPELINE_STALL_SECONDS."""
    from whatsapp.onboarding.retries import pipelines_sweep

    return len(pipelines_sweep())


@shared_task(bind=True, max_retries=5)
def forward_analytics_event(self, event_id: int) -> bool:
    from whatsapp.onboarding.analytics import analytics_forward

    if not analytics_forward(event_id):
        raise self.retry(countdown=60 * 2**self.request.retries)
    return True


@shared_task(bind=True, max_retries=None)
def send_outbound(self, message_id: str) -> str:
    """Sends one queued message (whatsapp/sending/worker.py); pacing and transient errors
    come back as a retry."""
    from whatsapp.sending.worker import outbound_send

    outcome = outbound_send(message_id)
    if outcome.retry_in is not None and not settings.CELERY_TASK_ALWAYS_EAGER:
        # The row's next_attempt_at says the same, so outbound_sweep recovers a lost retry.
        raise self.retry(countdown=max(0.05, outcome.retry_in))
    return outcome.status


@shared_task
def send_outbound_number(config_id: str) -> int:
    """Drains one number's due sends in batches (whatsapp/sending/batch.py); a number whose
    window is full comes back when a slot frees, without holding the worker meanwhile."""
    from whatsapp.sending.batch import outbound_drain
    from whatsapp.sending.queue import outbound_announce

    drained = outbound_drain(config_id)
    if drained.again_in is not None and not settings.CELERY_TASK_ALWAYS_EAGER:
        outbound_announce(config_id, countdown=max(0.01, drained.again_in))
    return drained.sent


@shared_task
def sweep_outbound() -> int:
    from whatsapp.sending.worker import outbound_sweep

    return outbound_sweep()


@shared_task
def sync_templates(connection_id: str | None = None) -> int:
    """One connection's templates, or every connected WABA's (beat)."""
    from whatsapp.models import Connection
    from whatsapp.sending.templates import templates_sync, templates_sync_all

    if connection_id:
        return templates_sync(Connection.objects.get(pk=connection_id)).created
    return len(templates_sync_all())


@shared_task
def reconcile_wabas() -> int:
    """Hourly: Meta's list of WABAs shared with us against our connections (findings)."""
    from whatsapp.onboarding.reconcile import reconciliation_configured, wabas_reconcile

    if not reconciliation_configured():
        return 0
    return len(wabas_reconcile().findings)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def erase_data(request_id: int) -> str:
    """Runs one data-erasure request (a lead's LGPD erasure or Meta's data-deletion callback).

    acks_late: a worker killed mid-way leaves the message to the broker, and the request row
    stays `running` until its lease runs out, when `sweep_erasures` enqueues it again; either
    way the run is idempotent (whatsapp/conversations/privacy.py)."""
    from whatsapp.conversations.privacy import erasure_run

    return erasure_run(request_id)


@shared_task
def sweep_erasures() -> int:
    from whatsapp.conversations.privacy import erasures_sweep

    return erasures_sweep()


@shared_task
def deliver_lead_events() -> int:
    """Hands new lead events to the subscribers' tasks and POSTs due ones to LEAD_EVENTS_URL,
    in order per conversation (whatsapp/events/delivery.py)."""
    from whatsapp.events.delivery import dispatch

    return dispatch()


@shared_task
def sweep_lead_events() -> int:
    """Beat: events whose wake-up was lost (broker down, a worker killed mid-send)."""
    from whatsapp.events.delivery import sweep

    return sweep()


@shared_task(bind=True, max_retries=None)
def run_lead_event_subscriber(self, event_id: str, path: str) -> bool:
    """One subscriber with one event; its own retries, so it never holds up anything else."""
    from whatsapp.events.subscribers import subscriber_run
    from whatsapp.models import LeadEvent

    event = LeadEvent.objects.filter(pk=event_id).first()
    if event is None:
        return False
    try:
        return subscriber_run(event, path)
    except Exception as exc:
        if (settings.CELERY_TASK_ALWAYS_EAGER
                or self.request.retries >= settings.LEAD_EVENT_SUBSCRIBER_RETRIES):
            logger.exception("Lead event subscriber %s gave up on event %s", path, event_id)
            return False
        logger.warning("Lead event subscriber %s failed on event %s; retrying", path, event_id)
        raise self.retry(countdown=min(3600, 10 * 2**self.request.retries), exc=exc) from exc


@shared_task
def expire_human_takeovers() -> int:
    """Beat: conversations with no phone-app message for WHATSAPP_HUMAN_TAKEOVER_HOURS go back
    to automation."""
    from whatsapp.conversations.takeover import takeovers_expire

    return takeovers_expire()


@shared_task(bind=True, max_retries=None)
def fetch_media(self, message_id: int) -> str:
    """Copies one message's media from Meta into our storage (bulk work; whatsapp/conversations/
    media.py); transient Graph errors come back as a retry with backoff."""
    from whatsapp.conversations.media import media_fetch

    outcome = media_fetch(message_id)
    if outcome.retry_in is not None and not settings.CELERY_TASK_ALWAYS_EAGER:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


@shared_task
def sweep_media() -> int:
    from whatsapp.conversations.media import media_sweep

    return media_sweep()


@shared_task
def purge_media() -> int:
    """Retention: removes media files older than WHATSAPP_MEDIA_RETENTION_DAYS."""
    from whatsapp.conversations.media import media_purge

    return media_purge()
