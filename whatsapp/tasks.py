"""Thin Celery tasks: they take ids and call the domain code, which owns idempotency."""

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import services, webhooks
from .models import WebhookLog


@shared_task(bind=True, max_retries=None)
def process_webhook(self, log_id: int) -> str:
    status = webhooks.webhook_process(log_id)
    if status == WebhookLog.Status.FAILED and not settings.CELERY_TASK_ALWAYS_EAGER:
        next_at = WebhookLog.objects.values_list("next_attempt_at", flat=True).get(pk=log_id)
        countdown = max(1, int((next_at - timezone.now()).total_seconds()))
        raise self.retry(countdown=countdown)
    return status


@shared_task
def sweep_webhooks() -> int:
    return webhooks.webhooks_sweep()


@shared_task
def expire_onboardings() -> int:
    return services.onboardings_expire()
