import pytest
import responses
from celery.app.task import Task
from django.core.cache import cache
from rest_framework.test import APIClient

from organizations.models import ApiToken
from tests.factories import MembershipFactory


@pytest.fixture(autouse=True)
def _publishing_not_paused(monkeypatch):
    """A test that made a publish fail must not pause the next test's (a process-wide pause)."""
    from whatsapp.webhooks import intake

    monkeypatch.setattr(intake, "_publish_paused_until", 0.0)


@pytest.fixture(autouse=True)
def _clean_redis():
    """Each test starts with an empty Redis database (tests use their own db number)."""
    cache.clear()
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()
    yield


@pytest.fixture
def membership(db):
    return MembershipFactory()


@pytest.fixture
def org(membership):
    return membership.organization


@pytest.fixture
def admin_user(membership):
    return membership.user


@pytest.fixture
def api(membership) -> APIClient:
    """An API client authenticated with a Bearer token of the org's admin."""
    _, raw = ApiToken.issue(user=membership.user, organization=membership.organization)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def redis_down(settings):
    """Points the cache at a port where nothing listens: Redis is 'down'."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "KEY_FUNCTION": "config.cache.plain_key",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    # Django resets its cache handlers when CACHES changes (setting_changed signal).
    yield


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple[str, tuple]]:
    """Every Celery publish of the test as (task name, args), kept from the broker.

    Patches the behaviour (publishing), not a module path, so moving code never breaks it.
    """
    calls: list[tuple[str, tuple]] = []

    def apply_async(task, args=None, kwargs=None, **options):
        calls.append((task.name, tuple(args or ())))

    monkeypatch.setattr(Task, "apply_async", apply_async)
    return calls


@pytest.fixture
def graph():
    """Meta's Graph API for unit tests: register answers (`graph.get(f"{GRAPH}/…", json=…)`,
    GRAPH from tests.meta); every call the product makes is in `graph.calls`. A call nobody
    answered fails the test with a ConnectionError, as Meta being unreachable would."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
