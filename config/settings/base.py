"""Settings for every environment, read from the process environment (and an optional `.env`).

With nothing set, the project runs on the embedded default: a SQLite file, a local-memory
cache and Celery tasks executed in-process. Setting `DATABASE_URL` and `REDIS_URL` switches to
PostgreSQL, Redis and real Celery workers. `config.settings.production` adds the checks that
make a production process refuse to start without its secrets.
"""

import hashlib
import ipaddress
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Core -------------------------------------------------------------------------------------
SECRET_KEY = env("DJANGO_SECRET_KEY", default="dev-insecure-secret-key-change-me")
DEBUG = env.bool("DJANGO_DEBUG", default=True)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# Public base URL of this deployment (used in printed links and by the Meta sandbox to reach
# the webhook). Empty: derived from the request.
SITE_URL = env("SITE_URL", default="")

INSTALLED_APPS = [
    "unfold",
    "unfold.contrib.filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "organizations",
    "audit",
    "whatsapp",
    "ops",
]

MIDDLEWARE = [
    # First, so every log line of the request (and its error) carries the request id.
    "config.middleware.RequestIdMiddleware",
    # Before anything reads REMOTE_ADDR: behind a trusted proxy it becomes the client's address.
    "config.middleware.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Meta's webhook (MACHINE_ENDPOINTS) stops here: what follows serves browsers.
    "config.middleware.MachineEndpointMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# URL names of endpoints only machines call: they skip the browser middlewares
# (config.middleware.MachineEndpointMiddleware).
MACHINE_ENDPOINTS = ["whatsapp:webhook"]

# Meta's Embedded Signup popup posts back to window.opener; "same-origin" would cut that link.
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin-allow-popups"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "organizations.context_processors.roles",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded default serves web requests and in-process tasks from several threads.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Celery -------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            # Keys are written exactly as named (e.g. `whatsapp:onboarding:{code}`), so ops can
            # find them with redis-cli.
            "KEY_FUNCTION": "config.cache.plain_key",
            "OPTIONS": {
                # Redis is a cache here: when it is down, callers fall back to the database
                # quickly instead of hanging on a connect.
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
            },
        }
    }
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
    if CELERY_BROKER_URL.startswith("redis://"):
        # kombu's Redis transport with a channel that closes completely when the broker goes
        # away; the stock one could kill a worker on a broker outage (config/broker.py).
        CELERY_BROKER_TRANSPORT = "config.broker:Transport"
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "KEY_FUNCTION": "config.cache.plain_key",
        }
    }
    CELERY_BROKER_URL = "memory://"
    # Embedded default: no broker, so tasks run in-process right after the request commits.
    CELERY_TASK_ALWAYS_EAGER = True
    # A failing task must not turn the webhook's 200 into a 500: its error is recorded on the row.
    CELERY_TASK_EAGER_PROPAGATES = False

CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
# Ack after the task ran, and requeue when the worker process dies, so a crash never loses a
# task. Tasks are idempotent and our own attempt counter (on the row) stops poison pills.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=1)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
# Well above the longest task (300 s) and the longest retry countdown, so Redis never
# redelivers a task that is still running or waiting. It must be set in all three places: with
# several apps on one broker the shortest value wins.
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
# Celery's Django fixup closes the DB connection around every task unless this is set; reuse
# more than doubles the task rate on PostgreSQL (WEBHOOK-RELIABILITY §4.5).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
# A late-ack task is redelivered anyway when the broker connection drops; cancel the local copy
# instead of letting two run at once. (Not the cause of the worker crash on broker outages of
# issue 15, which happened with it off too: see config/broker.py.)
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# A webhook request must not hang on a dead broker: the row is stored and the sweeper enqueues it.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = 30
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "America/Sao_Paulo"

# --- Auth, i18n, static -----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# Failed logins (organizations/login.py): per account and per client IP, in windows of the lockout
# length; reaching a limit locks that account or IP for LOGIN_LOCKOUT_SECONDS (audited).
LOGIN_MAX_FAILURES_PER_ACCOUNT = env.int("LOGIN_MAX_FAILURES_PER_ACCOUNT", default=5)
LOGIN_MAX_FAILURES_PER_IP = env.int("LOGIN_MAX_FAILURES_PER_IP", default=20)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "pt-br"
LANGUAGES = [("pt-br", "Português (Brasil)")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "America/Sao_Paulo"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

# Meta sends history chunks of up to 3 MB; the webhook view answers 413 above
# WHATSAPP_WEBHOOK_MAX_BYTES, so Django itself must accept a little more than that.
WHATSAPP_WEBHOOK_MAX_BYTES = env.int("WHATSAPP_WEBHOOK_MAX_BYTES", default=3 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = WHATSAPP_WEBHOOK_MAX_BYTES + 1024 * 1024

# --- Client address ---------------------------------------------------------------------------
# Comma-separated CIDRs of the reverse proxies in front of the app. Only a request whose
# REMOTE_ADDR is one of them has REMOTE_ADDR replaced by the right-most address of
# X-Forwarded-For that is not a trusted proxy (config/middleware.py). Empty: XFF is ignored.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
for _cidr in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_cidr.strip(), strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXIES: {_cidr!r} is not an IP address or CIDR") from _exc

# --- API --------------------------------------------------------------------------------------
# /api/schema/ (the OpenAPI document) readable by anyone; false = staff only.
API_SCHEMA_PUBLIC = env.bool("API_SCHEMA_PUBLIC", default=True)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "organizations.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Fail closed: an endpoint that does not declare its permission classes is for the
    # organization's admins only; what members may also call says `HasOrganization` itself.
    "DEFAULT_PERMISSION_CLASSES": ["organizations.permissions.IsOrganizationAdmin"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["config.ratelimit.OrganizationRateThrottle"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Qualifica Leads — WhatsApp API",
    "DESCRIPTION": "Embedded Signup, connection status and Meta webhooks.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # API_SCHEMA_PUBLIC decides at request time (config.api.SchemaAccess).
    "SERVE_PERMISSIONS": ["config.api.SchemaAccess"],
}

# --- Meta -------------------------------------------------------------------------------------
META_APP_ID = env("META_APP_ID", default="")
META_CONFIG_ID = env("META_CONFIG_ID", default="")
META_APP_SECRET = env("META_APP_SECRET", default="")
META_WEBHOOK_VERIFY_TOKEN = env("META_WEBHOOK_VERIFY_TOKEN", default="")
# The partner's own system user token, used to fetch business tokens after Hosted ES.
META_SYSTEM_USER_TOKEN = env("META_SYSTEM_USER_TOKEN", default="")
META_GRAPH_API_URL = env("META_GRAPH_API_URL", default="https://graph.facebook.com").rstrip("/")
META_GRAPH_API_VERSION = env("META_GRAPH_API_VERSION", default="v25.0")
META_ONBOARDING_URL = env(
    "META_ONBOARDING_URL", default="https://business.facebook.com/messaging/whatsapp/onboard/"
)
# Embedded Signup version both launchers (popup and hosted link) ask for in `extras`
# (whatsapp/onboarding/signup.py): v4, the only one Meta still runs, or v3 for seed 000 §6.1's
# exact extras (Meta retired v2/v3 on 2026-10-15: a v3 launch gets the Cloud-API-only flow).
META_EMBEDDED_SIGNUP_VERSION = env("META_EMBEDDED_SIGNUP_VERSION", default="v4")
if META_EMBEDDED_SIGNUP_VERSION not in ("v4", "v3"):
    raise ImproperlyConfigured("META_EMBEDDED_SIGNUP_VERSION must be v4 or v3.")
# Mounts the Meta sandbox (a stand-in for Meta used by the demo and tests). Never in production.
META_SANDBOX = env.bool("META_SANDBOX", default=False)
if META_SANDBOX:
    INSTALLED_APPS.append("sandbox")
# Where the sandbox posts its webhooks (its state API can change it at run time), and the
# partner's own business portfolio id it puts in PARTNER_ADDED's entry.id.
SANDBOX_WEBHOOK_URL = env(
    "SANDBOX_WEBHOOK_URL", default="http://127.0.0.1:8000/api/v1/whatsapp/webhook"
)
SANDBOX_PARTNER_BUSINESS_ID = env("SANDBOX_PARTNER_BUSINESS_ID", default="810000000000001")
# Our own (partner) business portfolio: reconcile_wabas lists the WABAs shared with it. In the
# sandbox it is the sandbox's partner; empty elsewhere = reconciliation off.
META_PARTNER_BUSINESS_ID = env("META_PARTNER_BUSINESS_ID",
                               default=SANDBOX_PARTNER_BUSINESS_ID if META_SANDBOX else "")

# AES-256-GCM key for tokens and PINs: 64 hex characters. Without one (development only) a key
# is derived from SECRET_KEY so the embedded default works out of the box.
TOKEN_ENCRYPTION_KEY = env("TOKEN_ENCRYPTION_KEY", default="") or hashlib.sha256(
    f"token-encryption:{SECRET_KEY}".encode()
).hexdigest()
# Older keys (comma-separated hex) still accepted for decryption during a rotation.
TOKEN_ENCRYPTION_OLD_KEYS = env.list("TOKEN_ENCRYPTION_OLD_KEYS", default=[])

WHATSAPP_ONBOARDING_TTL = env.int("WHATSAPP_ONBOARDING_TTL", default=86400)
# How long an unattributed PARTNER_ADDED during a pending signup awaits the browser (orphan after).
WHATSAPP_ORPHAN_GRACE_SECONDS = env.int("WHATSAPP_ORPHAN_GRACE_SECONDS", default=600)
WHATSAPP_DEFAULT_REDIRECT_PATH = "/dashboard/settings/whatsapp"
# A connection still `connecting` with no progress for this long is stalled (back-office tile).
WHATSAPP_PIPELINE_STALL_SECONDS = env.int("WHATSAPP_PIPELINE_STALL_SECONDS", default=300)
# Processing attempts for one webhook delivery before it is marked dead.
WHATSAPP_WEBHOOK_MAX_ATTEMPTS = env.int("WHATSAPP_WEBHOOK_MAX_ATTEMPTS", default=8)
# How long one attempt holds a row before the sweeper may retake it. Short, so a delivery whose
# worker died is taken again within seconds (lease + the 30 s sweep < 60 s); a live attempt
# renews it every quarter lease (whatsapp/webhooks/lease.py), so a long history import is never
# taken from a worker that is still working on it.
WHATSAPP_WEBHOOK_LEASE_SECONDS = env.int("WHATSAPP_WEBHOOK_LEASE_SECONDS", default=20)
# Processed deliveries' raw bodies (leads' personal data) are removed after this many days;
# the row, its metadata and body_sha256 stay (LGPD). Dead, failed and parked ones are kept.
WHATSAPP_WEBHOOK_RETENTION_DAYS = env.int("WHATSAPP_WEBHOOK_RETENTION_DAYS", default=30)
# Retry backoff: base × 2^(attempt-1) with jitter, capped below the broker visibility timeout.
WHATSAPP_WEBHOOK_RETRY_BASE_SECONDS = env.float("WHATSAPP_WEBHOOK_RETRY_BASE_SECONDS", default=30)
WHATSAPP_WEBHOOK_RETRY_MAX_SECONDS = env.float("WHATSAPP_WEBHOOK_RETRY_MAX_SECONDS", default=1800)
# Rows still `received` this long after arrival were never enqueued (broker down): sweep them.
WHATSAPP_WEBHOOK_SWEEP_STALE_SECONDS = env.int("WHATSAPP_WEBHOOK_SWEEP_STALE_SECONDS", default=60)
# The Redis inbox (whatsapp/inbox.py): the webhook view LPUSHes ids instead of publishing a
# Celery task per delivery; drainer tasks process them in batches. On with Redis.
WHATSAPP_WEBHOOK_INBOX = env.bool("WHATSAPP_WEBHOOK_INBOX", default=bool(REDIS_URL))
# Drainers at once (each occupies one worker process while a backlog lasts).
WHATSAPP_WEBHOOK_DRAINERS = env.int("WHATSAPP_WEBHOOK_DRAINERS", default=2)
# Ids popped per Redis call (a live batch is applied per group of deliveries sharing a number,
# one transaction of set-based statements each: the bigger the batch, the fewer statements per
# delivery), and the turn of one drainer task before it hands over to a fresh task (so other
# tasks get a worker during a long backlog).
WHATSAPP_WEBHOOK_DRAIN_BATCH = env.int("WHATSAPP_WEBHOOK_DRAIN_BATCH", default=50)
WHATSAPP_WEBHOOK_DRAIN_SECONDS = env.float("WHATSAPP_WEBHOOK_DRAIN_SECONDS", default=10)
# A drainer slot whose worker died frees itself after this long.
WHATSAPP_WEBHOOK_DRAINER_TTL_SECONDS = env.int("WHATSAPP_WEBHOOK_DRAINER_TTL_SECONDS", default=60)

# --- Sending (whatsapp/sending.py) --------------------------------------------------------------
# disabled | dry_run | enabled. Each organization's SendPolicy can only be stricter.
WHATSAPP_SEND_MODE = env("WHATSAPP_SEND_MODE", default="dry_run")
# Digits of the only numbers that may receive messages (test environments); empty = anyone.
WHATSAPP_SEND_ALLOWLIST = env.list("WHATSAPP_SEND_ALLOWLIST", default=[])
# Meta's test template; real tenants must use their approved templates (seed 003 Fase 1).
WHATSAPP_ALLOW_HELLO_WORLD = env.bool("WHATSAPP_ALLOW_HELLO_WORLD", default=False)
WHATSAPP_SEND_MAX_ATTEMPTS = env.int("WHATSAPP_SEND_MAX_ATTEMPTS", default=5)
WHATSAPP_SEND_RETRY_BASE_SECONDS = env.float("WHATSAPP_SEND_RETRY_BASE_SECONDS", default=15)
WHATSAPP_SEND_RETRY_MAX_SECONDS = env.float("WHATSAPP_SEND_RETRY_MAX_SECONDS", default=900)
# Messages per second per number (META-PLATFORM.md §6): coexistence numbers are fixed at 20.
WHATSAPP_THROUGHPUT_MPS = env.int("WHATSAPP_THROUGHPUT_MPS", default=80)
WHATSAPP_THROUGHPUT_COEXISTENCE_MPS = env.int("WHATSAPP_THROUGHPUT_COEXISTENCE_MPS", default=20)
# A worker sleeps this long at most for a number's pacing slot before handing the send back to
# the queue (short: a worker asleep on one busy number holds back every other number's sends).
WHATSAPP_PACING_MAX_WAIT_SECONDS = env.float("WHATSAPP_PACING_MAX_WAIT_SECONDS", default=0.25)
# Pacing counts in windows of 1 s plus this margin, for jitter between the grant and the call.
WHATSAPP_PACING_MARGIN_MS = env.float("WHATSAPP_PACING_MARGIN_MS", default=100)
# Meta's pair rate: at most one message per this many seconds to the same user (131056).
WHATSAPP_PAIR_RATE_SECONDS = env.float("WHATSAPP_PAIR_RATE_SECONDS", default=6)
# The batch sender (whatsapp/sending/batch.py): sends of one number claimed per statement; Graph
# calls made at once by a worker process (a round: its slots taken in one Redis call right
# before, its results recorded as it ends); how long one drain of a number runs before handing
# the worker to the other numbers' drains.
WHATSAPP_SEND_BATCH = env.int("WHATSAPP_SEND_BATCH", default=40)
WHATSAPP_SEND_CONCURRENCY = env.int("WHATSAPP_SEND_CONCURRENCY", default=20)
WHATSAPP_SEND_DRAIN_SECONDS = env.float("WHATSAPP_SEND_DRAIN_SECONDS", default=2)

# Where analytics events are forwarded (a Segment-compatible HTTP endpoint); empty = stored only.
ANALYTICS_ENDPOINT = env("ANALYTICS_ENDPOINT", default="")
ANALYTICS_WRITE_KEY = env("ANALYTICS_WRITE_KEY", default="")

# --- Rate limits (Redis, fail open; SPEC §6) ----------------------------------------------------
# Org-facing API, requests per minute per organization and view (URL name).
API_RATE_LIMITS = {
    "default": env.int("RATELIMIT_API_PER_MINUTE", default=120),
    "onboarding-url": env.int("RATELIMIT_ONBOARDING_URL_PER_MINUTE", default=20),
}
# Invalid-signature webhook requests per IP and minute before that IP's invalid requests get
# 429. Valid signed deliveries are never limited.
RATELIMIT_WEBHOOK_INVALID_PER_MINUTE = env.int("RATELIMIT_WEBHOOK_INVALID_PER_MINUTE",
                                               default=60)

# Settings groups, each read from the environment in its own module: usage/pricing and data
# protection (compliance), the inbox lanes and Celery queues (lanes), lead events (leads),
# WhatsApp media, operations and observability, the onboarding pipeline and reconciliation
# (pipeline), what the tenant is told (tenant).
from .compliance import *  # noqa: E402,F403
from .lanes import *  # noqa: E402,F403
from .leads import *  # noqa: E402,F403
from .media import *  # noqa: E402,F403
from .operations import *  # noqa: E402,F403
from .pipeline import *  # noqa: E402,F403
from .tenant import *  # noqa: E402,F403
