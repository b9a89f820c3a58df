"""Production settings: everything from base, and a refusal to start without the secrets."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env
from .static import MIDDLEWARE, STATIC_ROOT, STORAGES  # noqa: F401  (WhiteNoise)

DEBUG = False

_REQUIRED = [
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "META_APP_ID",
    "META_CONFIG_ID",
    "META_APP_SECRET",
    "META_WEBHOOK_VERIFY_TOKEN",
    "TOKEN_ENCRYPTION_KEY",
]
_missing = [name for name in _REQUIRED if not env(name, default="")]
if _missing:
    raise ImproperlyConfigured(
        "Production settings need these environment variables: " + ", ".join(_missing)
    )
if len(env("TOKEN_ENCRYPTION_KEY")) != 64:
    raise ImproperlyConfigured("TOKEN_ENCRYPTION_KEY must be 64 hex characters (32 bytes).")
if env.bool("META_SANDBOX", default=False):
    raise ImproperlyConfigured("META_SANDBOX must be off in production: it impersonates Meta.")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = 60 * 60 * 24 * 30
