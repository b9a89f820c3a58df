"""`/healthz`: the process answers. `/readyz`: the database, cache, broker and beat answer.

Only the components in `HEALTH_CRITICAL` (database and beat by default) make `/readyz` answer
503: with Redis down the web still stores webhooks and serves onboarding from the database, so
taking it out of the load balancer would turn a degraded service into an outage.
"""

from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from config.celery import app

from .models import Heartbeat


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readiness(only: list[str] | None = None) -> dict[str, str]:
    """Every check (or only the named ones: database, cache, broker, beat)."""
    names = only or ["database", "cache", "broker", "beat"]
    checks: dict[str, str] = {}
    if "database" in names or "beat" in names:
        checks["database"] = _database_check()
    if "cache" in names:
        checks["cache"] = _cache_check()
    if "broker" in names or "beat" in names:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            checks["broker"] = "in-process"
        else:
            if "broker" in names:
                checks["broker"] = _broker_check()
            if "beat" in names:
                checks["beat"] = (_beat_check() if checks["database"] == "ok"
                                  else "error: no database")
    return {name: value for name, value in checks.items() if name in names}


def _database_check() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def _cache_check() -> str:
    try:
        cache.set("health:probe", "1", timeout=5)
        return "ok" if cache.get("health:probe") == "1" else "error: no read-back"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def _broker_check() -> str:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=1)
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def _beat_check() -> str:
    last = Heartbeat.objects.filter(name="beat").values_list("at", flat=True).first()
    if last is None:
        return "error: no heartbeat yet"
    age = timezone.now() - last
    if age > timedelta(seconds=settings.HEALTH_BEAT_MAX_AGE_SECONDS):
        return f"error: last heartbeat {int(age.total_seconds())} s ago"
    return "ok"


def is_ready(checks: dict[str, str]) -> bool:
    return all(not value.startswith("error") for name, value in checks.items()
               if name in settings.HEALTH_CRITICAL)


def readyz(request: HttpRequest) -> JsonResponse:
    checks = readiness()
    ok = is_ready(checks)
    degraded = any(value.startswith("error") for value in checks.values())
    status = "error" if not ok else "degraded" if degraded else "ok"
    # 503 tells the load balancer to stop sending traffic until the dependencies are back.
    return JsonResponse({"status": status, "checks": checks}, status=200 if ok else 503)
