"""Operations and observability settings, read from the environment like the rest of
`config.settings.base` (which imports this module last): health, alerts and who receives them,
e-mail, logs, metrics, Sentry and the back-office's look."""

from email.utils import getaddresses

import environ

env = environ.Env()  # the .env file was read by base, into the process environment

# --- Operations -------------------------------------------------------------------------------
# /readyz fails when the last beat heartbeat is older than this (beat ticks every 30 s).
HEALTH_BEAT_MAX_AGE_SECONDS = env.int("HEALTH_BEAT_MAX_AGE_SECONDS", default=180)
# Components whose failure makes /readyz answer 503. Cache and broker outages are reported but
# do not stop the web: webhooks are still stored and onboarding falls back to the database.
HEALTH_CRITICAL = env.list("HEALTH_CRITICAL", default=["database", "beat"])
# Business hours (America/Sao_Paulo) for the "no completed connection in 24 h" alert.
ALERT_BUSINESS_HOURS = (8, 18)
# Alerts beyond Sentry and the log (ops/notify.py, README "Alerts"): e-mail to ADMINS ("Name
# <email>, …") over EMAIL_URL, a Slack-compatible webhook; empty = not sent. Then thresholds.
ADMINS = [(n, a) for n, a in getaddresses([env("DJANGO_ADMINS", default="")]) if a]
ALERTS_SLACK_WEBHOOK_URL = env("ALERTS_SLACK_WEBHOOK_URL", default="")
ALERTS_SLACK_TIMEOUT_SECONDS = env.float("ALERTS_SLACK_TIMEOUT_SECONDS", default=5.0)
vars().update(env.email_url("EMAIL_URL", default="smtp://localhost:25"))
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
SERVER_EMAIL = env("DJANGO_SERVER_EMAIL", default="alertas@localhost")
EMAIL_SUBJECT_PREFIX = "[Qualifica Leads] "
ALERTS_PIPELINE_STALLED_MINUTES = env.int("ALERTS_PIPELINE_STALLED_MINUTES", default=30)
ALERTS_PARKED_MAX_AGE_MINUTES = env.int("ALERTS_PARKED_MAX_AGE_MINUTES", default=30)
ALERTS_INVALID_SIGNATURES_PER_DAY = env.int("ALERTS_INVALID_SIGNATURES_PER_DAY", default=100)
ALERTS_RATELIMIT_WINDOW_MINUTES = env.int("ALERTS_RATELIMIT_WINDOW_MINUTES", default=15)

# --- Observability ----------------------------------------------------------------------------
SENTRY_DSN = env("SENTRY_DSN", default="")
# GET /metrics (Prometheus) needs `Authorization: Bearer <METRICS_TOKEN>`; empty = no endpoint
# (404). Counters add up across processes when PROMETHEUS_MULTIPROC_DIR is set (the
# environment variable prometheus-client reads; config/prometheus.py).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
# "plain" for people, "json" (one object per line) for log shippers.
LOG_FORMAT = env("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "scrub": {"()": "config.logging.ScrubSecretsFilter"},
        "context": {"()": "config.logging.RequestContextFilter"},
    },
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
        "json": {"()": "config.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler",
                    "formatter": "json" if LOG_FORMAT == "json" else "plain",
                    "filters": ["context", "scrub"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # No mail_admins handler: ADMINS get alerts (ops/notify.py), not unscrubbed errors.
        "django": {"handlers": [], "level": "INFO"},
    },
}

UNFOLD = {
    "SITE_TITLE": "Qualifica Leads · Suporte",
    "SITE_HEADER": "Qualifica Leads",
    "SITE_SYMBOL": "chat",
    "SHOW_HISTORY": True,
    # The admin index is the onboarding funnel dashboard (whatsapp/backoffice.py).
    "DASHBOARD_CALLBACK": "whatsapp.backoffice.dashboard.dashboard_callback",
}

if SENTRY_DSN:
    from config.logging import init_sentry

    init_sentry(SENTRY_DSN)
