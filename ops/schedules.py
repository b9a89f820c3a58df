"""The periodic tasks beat runs (django-celery-beat rows, editable in the admin).

`schedules_ensure` creates missing rows and leaves existing ones alone, so an operator's edit in
the admin survives deploys; `reset=True` restores the defaults. The data migration and
`manage.py setup_schedules` both call it.
"""

import json

TZ = "America/Sao_Paulo"

# name → (task, interval seconds or crontab dict, description)
SCHEDULES: dict[str, tuple[str, int | dict, str]] = {
    "beat heartbeat": ("ops.tasks.heartbeat", 30,
                       "Proves beat → broker → worker work; /readyz checks its age."),
    "webhook retry sweep": ("whatsapp.tasks.sweep_webhooks", 30,
                            "Re-enqueues deliveries never enqueued, due for retry or abandoned."),
    "onboarding expiry": ("whatsapp.tasks.expire_onboardings", 900,
                          "Marks pending onboardings past their expiry as expired."),
    "token health": ("ops.tasks.token_health", {"minute": "0", "hour": "2"},
                     "debug_token for every stored token, daily at 02:00 São Paulo."),
    "token expiry notices": ("whatsapp.tasks.notify_token_expiry", {"minute": "5", "hour": "*"},
                             "E-mails admins whose token expires within 30 / 7 days (once "
                             "per threshold)."),
    "subscription reconciliation": ("ops.tasks.reconcile_subscriptions",
                                    {"minute": "17", "hour": "*"},
                                    "Re-subscribes our app to active WABAs that lost it."),
    "alert evaluation": ("ops.tasks.evaluate_alerts", 300, "SPEC §7 alerts."),
    "redis health": ("ops.tasks.redis_health", 60, "Raises or clears the Redis-down alert."),
    "outbound send sweep": ("whatsapp.tasks.sweep_outbound", 30,
                            "Re-enqueues sends due for retry, never enqueued or abandoned."),
    "webhook body retention": ("whatsapp.tasks.purge_webhook_bodies", {"minute": "23", "hour": "*"},
                               "Removes processed deliveries' raw bodies older than "
                               "WHATSAPP_WEBHOOK_RETENTION_DAYS (LGPD)."),
    "pipeline sweep": ("whatsapp.tasks.sweep_pipelines", 60,
                       "Resumes onboarding pipelines with no progress for "
                       "WHATSAPP_PIPELINE_STALL_SECONDS (lost enqueue, dead worker)."),
    "WABA reconciliation": ("whatsapp.tasks.reconcile_wabas", {"minute": "47", "hour": "*"},
                            "Compares the WABAs shared with our partner business with our "
                            "connections (orphans found, no longer shared)."),
    "lead event sweep": ("whatsapp.tasks.sweep_lead_events", 30,
                         "Delivers lead events whose wake-up was lost (broker down, a worker "
                         "killed mid-send) and retries due ones."),
    "human takeover expiry": ("whatsapp.tasks.expire_human_takeovers", 300,
                              "Hands conversations back to automation after "
                              "WHATSAPP_HUMAN_TAKEOVER_HOURS without a phone-app message."),
    "media fetch sweep": ("whatsapp.tasks.sweep_media", 300,
                          "Re-enqueues media fetches never enqueued or abandoned."),
    "media retention": ("whatsapp.tasks.purge_media", {"minute": "29", "hour": "*"},
                        "Removes stored WhatsApp media older than WHATSAPP_MEDIA_RETENTION_DAYS."),
    "template sync": ("whatsapp.tasks.sync_templates", {"minute": "40", "hour": "*/6"},
                      "Reads every connected WABA's message templates from Meta."),
    "erasure sweep": ("whatsapp.tasks.sweep_erasures", 60,
                      "Re-enqueues data-erasure requests never taken or left by a dead worker."),
}


def schedules_ensure(periodic_task, interval_schedule, crontab_schedule, *,
                     reset: bool = False) -> dict[str, str]:
    """Takes the model classes so the migration can pass its historical models."""
    results: dict[str, str] = {}
    for name, (task, when, description) in SCHEDULES.items():
        if isinstance(when, int):
            schedule, _ = interval_schedule.objects.get_or_create(every=when, period="seconds")
            kind = {"interval": schedule, "crontab": None}
        else:
            schedule, _ = crontab_schedule.objects.get_or_create(
                minute=when["minute"], hour=when["hour"], day_of_week="*", day_of_month="*",
                month_of_year="*", timezone=TZ)
            kind = {"interval": None, "crontab": schedule}
        existing = periodic_task.objects.filter(name=name).first()
        if existing and not reset:
            results[name] = "kept"
            continue
        defaults = {"task": task, "description": description, "enabled": True,
                    "args": json.dumps([]), "kwargs": json.dumps({}), **kind}
        periodic_task.objects.update_or_create(name=name, defaults=defaults)
        results[name] = "reset" if existing else "created"
    return results
