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

PIPELINE_RETRY_LIMIT = 8


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


@shared_task(bind=True, max_retries=PIPELINE_RETRY_LIMIT)
def run_connection_pipeline(self, connection_id: str) -> str:
    """Runs what is left of a connection's onboarding pipeline; transient errors back off."""
    from whatsapp.onboarding.pipeline import pipeline_run

    outcome = pipeline_run(connection_id)
    if outcome == "retry" and not settings.CELERY_TASK_ALWAYS_EAGER:
        # 30 s, 1 min, 2 min … capped at 30 min (below the broker visibility timeout).
        raise self.retry(countdown=min(1800, 30 * 2**self.request.retries))
    return outcome


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
