"""Periodic operations tasks (scheduled in ops.schedules); thin wrappers over domain code."""

from collections import Counter

from celery import shared_task
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from whatsapp.onboarding.subscriptions import subscriptions_reconcile
from whatsapp.onboarding.token_health import tokens_check

from .alerts import alert_set, alerts_evaluate, redis_check
from .models import Heartbeat


@shared_task
def heartbeat() -> None:
    Heartbeat.beat("beat")


@shared_task
def token_health() -> dict:
    return dict(Counter(c.result for c in tokens_check()))


@shared_task
def reconcile_subscriptions() -> dict:
    checks = subscriptions_reconcile()
    for check in checks:
        if check.was_missing is None:
            continue  # could not tell: keep the alert as it is
        with translation.override(settings.LANGUAGE_CODE):
            message = _("App was not subscribed to WABA %(waba)s: %(result)s") % {
                "waba": check.waba_id, "result": check.result}
        alert_set(f"subscription_missing:{check.waba_id}", active=check.was_missing,
                  message=message, details={"organization_id": check.organization_id})
    return dict(Counter(c.result for c in checks))


@shared_task
def evaluate_alerts() -> int:
    return len(alerts_evaluate())


@shared_task
def redis_health() -> bool:
    return redis_check()
