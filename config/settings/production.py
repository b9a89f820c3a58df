"""Production settings: everything from base, a refusal to start without the secrets (or with a
malformed encryption key), and the HTTPS settings `manage.py check --deploy` expects.

`manage.py`, `config/wsgi.py` and `config/celery.py` default to this module; development and
tests choose theirs explicitly (`bin/demo`, `bin/test`, pytest's DJANGO_SETTINGS_MODULE).
"""

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


def _check_encryption_key(value: str, name: str) -> None:
    """A key is 64 hex characters (32 bytes). The message names the variable, never the value."""
    value = value.strip()
    try:
        ok = len(value) == 64 and len(bytes.fromhex(value)) == 32
    except ValueError:
        ok = False
    if not ok:
        raise ImproperlyConfigured(
            f"{name} must be 64 hex characters (a 32-byte AES-256 key), e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`."
        )


_check_encryption_key(env("TOKEN_ENCRYPTION_KEY"), "TOKEN_ENCRYPTION_KEY")
for _n, _old in enumerate(env.list("TOKEN_ENCRYPTION_OLD_KEYS", default=[]), start=1):
    _check_encryption_key(_old, f"TOKEN_ENCRYPTION_OLD_KEYS (entry {_n})")

if env.bool("META_SANDBOX", default=False):
    raise ImproperlyConfigured("META_SANDBOX must be off in production: it impersonates Meta.")

# --- HTTPS (issue 14 §6; README "Production security settings") ---------------------------------
# TLS ends at the proxy, which must set X-Forwarded-Proto (and strip a client's own).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# Plain-HTTP requests are redirected to HTTPS, except the health probes (a load balancer may
# probe over HTTP) and Prometheus, which scrapes `/metrics` over the internal network. Off
# only when the proxy already redirects everything.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 30)
# The app's own host name (e.g. app.qualificaleads.com.br) covers only names below it.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Preloading is a commitment of the whole registrable domain that takes months to undo: the
# domain owner opts in (with DJANGO_SECURE_HSTS_SECONDS >= 31536000), never a default.
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)

# Staff only unless opted in: the schema maps every endpoint and parameter.
API_SCHEMA_PUBLIC = env.bool("API_SCHEMA_PUBLIC", default=False)

# Production gets Django's full set of password validators.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

SILENCED_SYSTEM_CHECKS = [
    # HSTS preload is the domain owner's decision (see SECURE_HSTS_PRELOAD above).
    "security.W021",
    # drf-spectacular cannot guess a serializer for the function views of the WhatsApp API
    # (they validate by hand and answer plain dicts): the schema lists them without a body
    # schema. That is documentation quality, not a deployment risk.
    "drf_spectacular.W002",
]
