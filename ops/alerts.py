"""SPEC §7 alerts, to Sentry and the logs, each reported once per change of its condition.

`alert_set` stores each condition's current state (`AlertState`): raising an already active
alert or clearing an inactive one is silent, so a 5-minute evaluation never floods anyone.
"""

import logging
from datetime import timedelta

import sentry_sdk
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.cache import redis_client
from whatsapp.models import Connection, Onboarding, WebhookLog
from whatsapp.onboarding.attribution import orphans_confirm

from .models import AlertState

logger = logging.getLogger("ops.alerts")


def _notify(key: str, active: bool, message: str) -> None:
    text = f"ALERT {key}: {message}" if active else f"RESOLVED {key}"
    (logger.error if active else logger.info)(text)
    try:
        sentry_sdk.capture_message(text, level="error" if active else "info")
    except Exception:  # Sentry is optional; the log line above is the record
        pass


def alert_set(key: str, *, active: bool, message: str = "", details: dict | None = None) -> bool:
    """Records a condition's state; notifies (and returns True) only when it changed."""
    now = timezone.now()
    with transaction.atomic():
        state, created = AlertState.objects.select_for_update().get_or_create(
            key=key, defaults={"active": False, "changed_at": now})
        changed = state.active != active
        state.evaluated_at = now
        if changed:
            state.active, state.changed_at = active, now
            state.message = message if active else state.message
            state.details = details or {}
        elif active and message:
            state.message, state.details = message, details or state.details
        state.save()
    if changed:
        _notify(key, active, message or state.message)
    return changed


# --- Conditions --------------------------------------------------------------------------------
def _signup_error_rate(now) -> None:
    recent = Onboarding.objects.filter(created_at__gte=now - timedelta(hours=1))
    finished = recent.exclude(status=Onboarding.Status.PENDING).count()
    failed = recent.filter(status=Onboarding.Status.FAILED).count()
    # At least 5 finished attempts, so one failure out of two is not an incident.
    rate = failed / finished if finished else 0.0
    alert_set("signup_error_rate", active=finished >= 5 and rate > 0.2,
              message=f"{rate:.0%} of {finished} Embedded Signup attempts failed in the last hour",
              details={"failed": failed, "finished": finished})


def _in_business_hours(now) -> bool:
    local = timezone.localtime(now)
    start, end = settings.ALERT_BUSINESS_HOURS
    return local.weekday() < 5 and start <= local.hour < end


def _no_completed_connections(now) -> None:
    if not _in_business_hours(now):
        return  # the condition is only judged during business hours; state is kept as is
    completed = Onboarding.objects.filter(status=Onboarding.Status.COMPLETED,
                                          completed_at__gte=now - timedelta(hours=24)).count()
    alert_set("no_completed_connections_24h", active=completed == 0,
              message="No WhatsApp connection was completed in the last 24 hours")


def _unprocessed_deliveries(now) -> None:
    S = WebhookLog.Status
    hour = now - timedelta(hours=1)
    dead = WebhookLog.objects.filter(status=S.DEAD, received_at__gte=hour).count()
    # Not done 5 minutes after arrival: a working pipeline finishes in seconds.
    stuck = WebhookLog.objects.backlog().filter(
        received_at__gte=hour, received_at__lte=now - timedelta(minutes=5)).count()
    alert_set("unprocessed_deliveries", active=dead + stuck > 5,
              message=f"{dead} dead and {stuck} unprocessed webhook deliveries in the last hour",
              details={"dead": dead, "stuck": stuck})


def _orphans(now) -> None:
    # WABAs that awaited the browser past the grace period become orphans first (audited).
    orphans_confirm(now=now)
    wabas = list(Connection.objects.confirmed_orphans().values_list("waba_id", flat=True)[:50])
    alert_set("orphan_waba", active=bool(wabas),
              message=f"{len(wabas)} WABA(s) without an organization: {', '.join(wabas)}",
              details={"waba_ids": wabas})


def _tokens_expiring(now) -> None:
    live = Connection.objects.active().filter(token_status=Connection.TokenStatus.VALID)
    for days in (30, 7):
        soon = set(live.filter(token_expires_at__lte=now + timedelta(days=days))
                   .values_list("waba_id", flat=True))
        known = _active_keys(f"token_expiring_{days}d:")
        for waba in soon:
            alert_set(f"token_expiring_{days}d:{waba}", active=True,
                      message=f"Token of WABA {waba} expires within {days} days")
        for key in known - {f"token_expiring_{days}d:{w}" for w in soon}:
            alert_set(key, active=False)


def _active_keys(prefix: str) -> set[str]:
    return set(AlertState.objects.filter(key__startswith=prefix, active=True)
               .values_list("key", flat=True))


def redis_check() -> bool:
    """Pings the cache's Redis; raises/clears the `redis_down` alert. True when it answers."""
    try:
        ok = bool(redis_client().ping())
    except NotImplementedError:
        return True  # no Redis configured (embedded default)
    except Exception:
        ok = False
    alert_set("redis_down", active=not ok, message="Redis does not answer")
    return ok


CONDITIONS = [_signup_error_rate, _no_completed_connections, _unprocessed_deliveries, _orphans,
              _tokens_expiring]


def alerts_evaluate(*, now=None) -> list[dict]:
    """Evaluates every condition; returns the alerts active afterwards."""
    now = now or timezone.now()
    for condition in CONDITIONS:
        try:
            condition(now)
        except Exception:
            # One broken check must not hide the others.
            logger.exception("Alert condition %s failed", condition.__name__)
    return [{"key": a.key, "message": a.message, "since": a.changed_at.isoformat()}
            for a in AlertState.objects.filter(active=True)]
