"""SPEC §7 alerts, each reported once per change of its condition: to Sentry and the logs,
and when configured by e-mail to ADMINS and to a Slack-compatible webhook (ops/notify.py).

`alert_set` stores each condition's current state (`AlertState`): raising an already active
alert or clearing an inactive one is silent, so a 5-minute evaluation never floods anyone.
Conditions about one thing (a WABA, a number) have one key each (`orphan_waba:<waba>`), so a
second one is announced while the first is still open. Messages are pt-BR (LANGUAGE_CODE).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Min, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from config import ratelimit
from config.cache import redis_client
from whatsapp.models import Connection, Onboarding, PhoneNumber, WebhookLog
from whatsapp.onboarding.attribution import orphans_confirm
from whatsapp.sending.usage import month_of, numbers_over_free_tier
from whatsapp.webhooks.intake import invalid_signatures_today

from .models import AlertState
from .notify import notify

logger = logging.getLogger("ops.alerts")


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
        notify(key, active, message or state.message)
    return changed


# --- Conditions --------------------------------------------------------------------------------
def _signup_error_rate(now) -> None:
    recent = Onboarding.objects.filter(created_at__gte=now - timedelta(hours=1))
    finished = recent.exclude(status=Onboarding.Status.PENDING).count()
    failed = recent.filter(status=Onboarding.Status.FAILED).count()
    # At least 5 finished attempts, so one failure out of two is not an incident.
    rate = failed / finished if finished else 0.0
    alert_set("signup_error_rate", active=finished >= 5 and rate > 0.2,
              message=_("%(rate)s of %(finished)d Embedded Signup attempts failed in the last "
                        "hour") % {"rate": f"{rate:.0%}", "finished": finished},
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
              message=_("No WhatsApp connection was completed in the last 24 hours"))


def _unprocessed_deliveries(now) -> None:
    S = WebhookLog.Status
    hour = now - timedelta(hours=1)
    dead = WebhookLog.objects.filter(status=S.DEAD, received_at__gte=hour).count()
    # Not done 5 minutes after arrival: a working pipeline finishes in seconds.
    stuck = WebhookLog.objects.backlog().filter(
        received_at__gte=hour, received_at__lte=now - timedelta(minutes=5)).count()
    alert_set("unprocessed_deliveries", active=dead + stuck > 5,
              message=_("%(dead)d dead and %(stuck)d unprocessed webhook deliveries in the last "
                        "hour") % {"dead": dead, "stuck": stuck},
              details={"dead": dead, "stuck": stuck})


def _orphans(now) -> None:
    # WABAs that awaited the browser past the grace period become orphans first (audited).
    orphans_confirm(now=now)
    wabas = Connection.objects.confirmed_orphans().values_list("waba_id", flat=True)
    # Prefix without the colon: also clears the single `orphan_waba` key of older versions.
    _alert_each("orphan_waba", {
        f"orphan_waba:{waba}": _("WABA %(waba)s has no organization: claim it in the back-office "
                                 "(orphan WABAs)") % {"waba": waba}
        for waba in wabas})


def _stalled_pipelines(now) -> None:
    """A tenant's connection still `connecting` with no saved progress (updated_at) for
    ALERTS_PIPELINE_STALLED_MINUTES: the pipeline is stuck or stopped retrying."""
    minutes = settings.ALERTS_PIPELINE_STALLED_MINUTES
    stalled = (Connection.objects.filter(status=Connection.Status.CONNECTING,
                                         organization__isnull=False,
                                         updated_at__lte=now - timedelta(minutes=minutes))
               .select_related("organization"))
    _alert_each("pipeline_stalled:", {
        f"pipeline_stalled:{c.waba_id}": _(
            "Connection of WABA %(waba)s (%(organization)s) has made no progress for more than "
            "%(minutes)d minutes (step: %(step)s)") % {
            "waba": c.waba_id, "organization": c.organization.name, "minutes": minutes,
            "step": c.pipeline_step or "-"}
        for c in stalled})


def _pipeline_errors(now) -> None:
    """A tenant's connection in `error`: its automatic attempts ran out or a person must act
    (the code says why; the tenant sees it with "Tentar novamente")."""
    _alert_each("pipeline_error:", {
        f"pipeline_error:{c.waba_id}": _(
            "Connection of WABA %(waba)s (%(organization)s) failed: %(code)s (step: %(step)s)")
        % {"waba": c.waba_id, "organization": c.organization.name,
           "code": c.error_code or "-", "step": c.pipeline_step or "-"}
        for c in Connection.objects.pipeline_errors().select_related("organization")})


def _no_longer_shared(now) -> None:
    """Reconciliation found a connected WABA Meta no longer shares with us (last 24 h)."""
    gone = (Connection.objects.filter(status=Connection.Status.DISCONNECTED,
                                      disconnect_reason="no_longer_shared",
                                      disconnected_at__gte=now - timedelta(hours=24))
            .select_related("organization"))
    _alert_each("waba_no_longer_shared:", {
        f"waba_no_longer_shared:{c.waba_id}": _(
            "WABA %(waba)s (%(organization)s) is no longer shared with us: disconnected")
        % {"waba": c.waba_id, "organization": c.organization.name if c.organization else "-"}
        for c in gone})


def _failed_syncs(now) -> None:
    failed = PhoneNumber.SyncStatus.FAILED
    numbers = PhoneNumber.objects.filter(
        Q(contacts_sync_status=failed) | Q(history_sync_status=failed),
        connection__status__in=[Connection.Status.CONNECTING, Connection.Status.CONNECTED,
                                Connection.Status.AWAITING_PHONE_SELECTION])
    _alert_each("sync_failed:", {
        f"sync_failed:{n.phone_number_id}": _(
            "Coexistence sync failed for number %(number)s (contacts: %(contacts)s, history: "
            "%(history)s)") % {"number": n.display_phone_number or n.phone_number_id,
                               "contacts": n.get_contacts_sync_status_display(),
                               "history": n.get_history_sync_status_display()}
        for n in numbers})


def _parked_backlog_age(now) -> None:
    parked = WebhookLog.objects.filter(status=WebhookLog.Status.PARKED).aggregate(
        oldest=Min("received_at"))["oldest"]
    minutes = int((now - parked).total_seconds() // 60) if parked else 0
    alert_set("parked_backlog_age", active=minutes > settings.ALERTS_PARKED_MAX_AGE_MINUTES,
              message=_("The oldest parked webhook delivery has waited %(minutes)d minutes")
              % {"minutes": minutes}, details={"oldest_minutes": minutes})


def _forged_signatures(now) -> None:
    """Today's count of webhook requests with a missing or invalid signature (the daily
    counter of whatsapp.webhooks.intake); resolves when the day's count starts again."""
    count = invalid_signatures_today(now)
    alert_set("forged_signatures", active=count >= settings.ALERTS_INVALID_SIGNATURES_PER_DAY,
              message=_("%(count)d webhook requests with an invalid signature today")
              % {"count": count}, details={"count": count})


def _rate_limit_activations(now) -> None:
    minutes = settings.ALERTS_RATELIMIT_WINDOW_MINUTES
    count = ratelimit.activations(minutes=minutes, now=now.timestamp())
    alert_set("rate_limit_activations", active=count > 0,
              message=_("Rate limits were activated %(count)d times in the last %(minutes)d "
                        "minutes") % {"count": count, "minutes": minutes},
              details={"count": count})


def _free_service_tier(now) -> None:
    """A number left its free service tier this month (Meta now bills its service messages).

    One key per number and month, so each number is announced once a month; last month's keys
    resolve when the month turns (the tier starts again)."""
    month = month_of(now)
    _alert_each("free_tier_exceeded:", {
        f"free_tier_exceeded:{u.phone_number_id}:{month}": _(
            "Number %(number)s left its free service tier in %(month)s: %(delivered)d service "
            "messages delivered (free: %(size)d); Meta now bills its service messages") % {
            "number": u.display_phone_number or u.phone_number_id, "month": month,
            "delivered": u.service_delivered, "size": u.free_tier_size}
        for u in numbers_over_free_tier(now=now)})


def _alert_each(prefix: str, current: dict[str, str]) -> None:
    """One alert per key in `current` (raised with its message); the prefix's other active
    alerts are resolved."""
    for key, message in current.items():
        alert_set(key, active=True, message=message)
    for key in _active_keys(prefix) - current.keys():
        alert_set(key, active=False)


def _tokens_expiring(now) -> None:
    live = Connection.objects.active().filter(token_status=Connection.TokenStatus.VALID)
    for days in (30, 7):
        soon = set(live.filter(token_expires_at__lte=now + timedelta(days=days))
                   .values_list("waba_id", flat=True))
        known = _active_keys(f"token_expiring_{days}d:")
        for waba in soon:
            alert_set(f"token_expiring_{days}d:{waba}", active=True,
                      message=_("Token of WABA %(waba)s expires within %(days)d days")
                      % {"waba": waba, "days": days})
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
    with translation.override(settings.LANGUAGE_CODE):
        alert_set("redis_down", active=not ok, message=_("Redis does not answer"))
    return ok


CONDITIONS = [_signup_error_rate, _no_completed_connections, _unprocessed_deliveries, _orphans,
              _tokens_expiring, _stalled_pipelines, _pipeline_errors, _failed_syncs,
              _no_longer_shared, _parked_backlog_age, _forged_signatures,
              _rate_limit_activations, _free_service_tier]


def alerts_evaluate(*, now=None) -> list[dict]:
    """Evaluates every condition; returns the alerts active afterwards."""
    now = now or timezone.now()
    for condition in CONDITIONS:
        try:
            with translation.override(settings.LANGUAGE_CODE):
                condition(now)
        except Exception:
            # One broken check must not hide the others.
            logger.exception("Alert condition %s failed", condition.__name__)
    return [{"key": a.key, "message": a.message, "since": a.changed_at.isoformat()}
            for a in AlertState.objects.filter(active=True)]
