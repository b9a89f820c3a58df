"""Periodic operations tasks (scheduled in ops.schedules); thin wrappers over domain code."""

from collections import Counter

from celery import shared_task

from .models import Heartbeat


@shared_task
def heartbeat() -> None:
    Heartbeat.beat("beat")


@shared_task
def token_health() -> dict:
    from whatsapp.token_health import tokens_check

    return dict(Counter(c.result for c in tokens_check()))


@shared_task
def reconcile_subscriptions() -> dict:
    from whatsapp.subscriptions import subscriptions_reconcile

    return dict(Counter(c.result for c in subscriptions_reconcile()))


@shared_task
def evaluate_alerts() -> int:
    from .alerts import alerts_evaluate

    return len(alerts_evaluate())


@shared_task
def redis_health() -> bool:
    from .alerts import redis_check

    return redis_check()
