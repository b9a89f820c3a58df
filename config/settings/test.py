"""Test settings: real PostgreSQL and Redis by default (override with the same variables)."""

import os

# TEST_DATABASE_URL / TEST_REDIS_URL (not DATABASE_URL) so a developer's .env never points the
# tests at a real database; pytest-django creates and drops its own `test_…` database anyway.
os.environ["DATABASE_URL"] = os.environ.get(
    "TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/qualifica"
)
os.environ["REDIS_URL"] = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("META_APP_ID", "1531656324571133")
os.environ.setdefault("META_CONFIG_ID", "1410410867548573")
os.environ.setdefault("META_APP_SECRET", "test_app_secret_not_real")
os.environ.setdefault("META_WEBHOOK_VERIFY_TOKEN", "test-verify-token")
os.environ.setdefault("TOKEN_ENCRYPTION_KEY", "11" * 32)
os.environ.setdefault("META_SYSTEM_USER_TOKEN", "test-partner-system-user-token")
# The Meta sandbox is mounted in tests, so they can drive it over real HTTP.
os.environ.setdefault("META_SANDBOX", "true")
# Metrics in multiprocess mode, as in production: a fresh directory per run, so the live
# server, the test process and subprocesses (tests/ops/test_metrics.py) add up.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="qualifica-metrics-")

# Media copies go to a throwaway directory (a worker subprocess inherits it).
if not os.environ.get("MEDIA_ROOT"):
    import tempfile

    os.environ["MEDIA_ROOT"] = tempfile.mkdtemp(prefix="qualifica-media-")

from .base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests enqueue for real (to Redis) and assert on the queue or call task functions directly.
CELERY_TASK_ALWAYS_EAGER = False
