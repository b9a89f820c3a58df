from typing import NamedTuple

import pytest
import responses
from celery.app.task import Task
from django.core.cache import cache
from rest_framework.test import APIClient

from organizations.models import ApiToken, Membership
from tests.factories import ConnectionFactory, MembershipFactory, PhoneNumberFactory
from tests.sandbox.conftest import Sandbox
from whatsapp.core.graph import GraphClient
from whatsapp.models import MessageTemplate, SendPolicy
from whatsapp.sending.templates import template_use_set, templates_sync


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
    """The organization's admin (admins may connect, disconnect and choose the number; the
    `api` fixture and most tests act as this user)."""
    return MembershipFactory(role=Membership.Role.ADMIN)


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


class Publish(NamedTuple):
    """One publish to the broker: the task's short name (`process_webhook` for
    `whatsapp.tasks.process_webhook`; other apps' tasks keep their full name), its positional
    args, its countdown (None when it runs as soon as a worker takes it) and its keyword args
    (the product publishes none today)."""

    task: str
    args: tuple
    countdown: float | None
    kwargs: dict


class Broker:
    """The Celery broker of a unit test: keeps every publish instead of sending it.

    Replaces `Task.apply_async` at class level, so `.delay()`, `.apply_async()` and
    `self.retry()` of every task are captured whatever module the caller lives in: tests name
    tasks by their short name (`whatsapp.tasks.<name>`, a contract that never moves), never
    by the module path of the code that publishes them.

    - `broker.published`: every publish that went through, in order (`Publish` tuples);
    - `broker.of("process_webhook")`: the args tuple of each publish of that task, in order;
    - `broker.countdowns("process_webhook")`: their countdowns (None: no countdown);
    - `broker.clear()`: forgets what was published (and refused) so far;
    - `broker.fail("drain_webhook_inbox", error=ConnectionError("broker down"))`: from now on
      publishing that task raises `error`, as a broker outage does (`broker.fail()` with no
      name: every task); `broker.refused(name)` lists the args of the publishes that raised;
    - `broker.recover()`: the broker is back, publishes go through again.
    """

    def __init__(self) -> None:
        self.published: list[Publish] = []
        self.refused_publishes: list[Publish] = []
        self._failing: dict[str | None, BaseException] = {}

    def publish(self, task: Task, args=None, kwargs=None, countdown=None, **options) -> None:
        publish = Publish(task.name.removeprefix("whatsapp.tasks."), tuple(args or ()),
                          countdown, dict(kwargs or {}))
        error = self._failing.get(publish.task, self._failing.get(None))
        if error is not None:
            self.refused_publishes.append(publish)
            raise error
        self.published.append(publish)

    def of(self, task: str) -> list[tuple]:
        return [p.args for p in self.published if p.task == task]

    def countdowns(self, task: str) -> list[float | None]:
        return [p.countdown for p in self.published if p.task == task]

    def refused(self, task: str) -> list[tuple]:
        return [p.args for p in self.refused_publishes if p.task == task]

    def clear(self) -> None:
        self.published.clear()
        self.refused_publishes.clear()

    def fail(self, task: str | None = None, *, error: BaseException | None = None) -> None:
        self._failing[task] = error or ConnectionError("broker down")

    def recover(self) -> None:
        self._failing.clear()


@pytest.fixture
def broker(monkeypatch) -> Broker:
    """The Celery broker, kept in the test: see `Broker`. Patches publishing (a behaviour),
    not a module path, so moving code never breaks the tests that use it."""
    fake = Broker()

    def apply_async(task, args=None, kwargs=None, **options):
        fake.publish(task, args, kwargs, **options)

    monkeypatch.setattr(Task, "apply_async", apply_async)
    return fake


@pytest.fixture
def graph():
    """Meta's Graph API for unit tests: register answers (`graph.get(f"{GRAPH}/…", json=…)`,
    GRAPH from tests.meta); every call the product makes is in `graph.calls`. A call nobody
    answered fails the test with a ConnectionError, as Meta being unreachable would."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


# --- the Meta sandbox as Meta, and a tenant connected to it (sending and conversation tests) ---
@pytest.fixture
def meta(live_server, settings):
    """The sandbox as Meta: Graph at /sandbox/graph, webhooks to this server, no delays."""
    settings.META_GRAPH_API_URL = f"{live_server.url}/sandbox/graph"
    client = Sandbox(live_server.url)
    client.switches(webhook_url=client.webhook_url, app_installed_delay_ms=0, event_gap_ms=0,
                    retry_delays=[0.2, 0.2])
    yield client
    client.api("POST", "reset")  # stop its threads before the tables are flushed
    client.http.close()


@pytest.fixture
def tenant(meta, settings):
    """An organization connected to a sandbox coexistence number, sending enabled."""
    settings.WHATSAPP_SEND_MODE = "enabled"
    result, token = meta.connected("coexistence")
    waba, phone = result["waba_id"], result["phone_number_ids"][0]
    assert GraphClient(token).subscribe_app(waba)  # without it Meta sends no statuses
    membership = MembershipFactory()
    org = membership.organization
    connection = ConnectionFactory(organization=org, waba_id=waba)
    connection.set_access_token(token)
    connection.save()
    config = PhoneNumberFactory(connection=connection, phone_number_id=phone, is_on_biz_app=True)
    SendPolicy.objects.create(organization=org, mode="enabled")
    templates_sync(connection)
    template_use_set(template=MessageTemplate.objects.get(name="confirmacao_visita"),
                     use="confirmacao")
    _, raw = ApiToken.issue(user=membership.user, organization=org)
    return {"org": org, "config": config, "bearer": f"Bearer {raw}"}
