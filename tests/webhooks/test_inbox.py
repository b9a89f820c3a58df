"""The Redis inbox between the webhook view and the workers (whatsapp/inbox.py), on real Redis.

Drainer tasks are run here as plain function calls; the publishes they make (a helper, a
hand-over, a retry) are captured instead of sent (the `broker` fixture, tests/conftest.py).
A real worker drains the inbox in tests/reliability and tests/e2e.
"""

from contextlib import contextmanager
from unittest import mock

import pytest
from django.db import OperationalError, connection

from config.cache import redis_client
from tests.meta import load, wire
from whatsapp.models import WebhookLog
from whatsapp.tasks import drain_webhook_inbox
from whatsapp.webhooks import inbox, intake
from whatsapp.webhooks.dispatch import FIELD_HANDLERS

pytestmark = pytest.mark.django_db


def deliver(n: int) -> list[int]:
    """n deliveries stored and announced as the view does after its commit."""
    ids = []
    for i in range(n):
        body = load("unknown_field.json")
        body["entry"][0]["id"] = str(900 + i)
        ids.append(intake.webhook_store(body=wire(body), headers={}))
        intake.webhook_announce(ids[-1])
    return ids


def queued(lane: str = "live") -> list[int]:
    """The ids waiting in a lane, in the order drainers take them (round robin by tenant)."""
    client = redis_client()
    tenants = [t.decode() for t in reversed(client.lrange(inbox.RING.format(lane), 0, -1))]
    lists = {t: [int(i) for i in reversed(client.lrange(inbox.TENANT.format(lane) + t, 0, -1))]
             for t in tenants}
    order = []
    while any(lists.values()):
        for tenant in tenants:
            if lists[tenant]:
                order.append(lists[tenant].pop(0))
    return order


def statuses(ids) -> list[str]:
    by_id = dict(WebhookLog.objects.filter(pk__in=ids).values_list("pk", "status"))
    return [by_id[i] for i in ids]


def drainers(broker) -> list[tuple]:
    """Drainer tasks published (captured, not sent), as (slot, token) pairs, oldest first."""
    return broker.of("drain_webhook_inbox")


@contextmanager
def database_restarts_at(ids: list[int], n: int):
    """PostgreSQL restarts when processing reaches delivery `ids[n]`: the first query on the
    deliveries' table that carries its id (and no other of `ids`, so a constant equal to it in
    another delivery's query cannot trigger it) raises OperationalError. Once: the database is
    back for what follows."""
    restarted = []

    def restart(execute, sql, params, many, context):
        named = [i for i in ids if i in (params or ())]
        if not restarted and WebhookLog._meta.db_table in sql and named == [ids[n]]:
            restarted.append(ids[n])
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(restart):
        yield restarted


def test_one_drainer_for_a_burst_processes_every_delivery_and_frees_its_slot(broker):
    ids = deliver(5)
    # Five deliveries, one task published: the doorbell was already ringing for the others.
    assert len(drainers(broker)) == 1
    [(slot, token)] = drainers(broker)
    assert slot == 0 and queued() == ids

    assert drain_webhook_inbox(slot, token) == 5
    assert statuses(ids) == ["processed"] * 5
    assert queued() == [] and inbox.waiting("live") == 0
    assert redis_client().get(inbox.SLOT.format("live", 0)) is None
    # The next delivery finds the doorbell silent and starts a new drainer.
    deliver(1)
    assert len(drainers(broker)) == 2


def test_a_backlog_calls_a_helper_into_the_next_slot(settings, broker):
    settings.WHATSAPP_WEBHOOK_DRAIN_BATCH = 2
    ids = deliver(5)
    slot, token = drainers(broker)[-1]
    drain_webhook_inbox(slot, token)
    helper_slots = [args[0] for args in drainers(broker)[1:]]
    assert helper_slots == [1]
    assert statuses(ids) == ["processed"] * 5


def test_no_helper_beyond_the_configured_drainers(settings, broker):
    settings.WHATSAPP_WEBHOOK_DRAIN_BATCH = 2
    settings.WHATSAPP_WEBHOOK_DRAINERS = 1
    deliver(5)
    drain_webhook_inbox(*drainers(broker)[-1])
    assert len(drainers(broker)) == 1


def test_a_drainer_hands_over_to_a_fresh_task_when_its_turn_is_over(settings, broker):
    settings.WHATSAPP_WEBHOOK_DRAIN_SECONDS = 0
    ids = deliver(3)
    slot, token = drainers(broker)[-1]
    assert drain_webhook_inbox(slot, token) == 0
    # Nothing was lost: the ids still wait, the slot is still held, a fresh task has it.
    assert drainers(broker) == [(slot, token), (slot, token)]
    assert queued() == ids
    assert redis_client().get(inbox.SLOT.format("live", 0)) == token.encode()
    assert statuses(ids) == ["received"] * 3


def test_a_failing_delivery_is_retried_later_and_the_others_go_on(broker):
    ids = deliver(3)

    def boom_on_second(change, ctx):
        if change.entry_id == "901":
            raise KeyError("boom")
        # The others: stored only, as the real handler of an unknown field does.

    with mock.patch.dict(FIELD_HANDLERS, {"some_future_field": boom_on_second}):
        drain_webhook_inbox(*drainers(broker)[-1])
    assert statuses(ids) == ["processed", "failed", "processed"]
    assert broker.of("process_webhook") == [(ids[1],)]
    assert broker.countdowns("process_webhook")[0] >= 1


def test_broker_down_one_delivery_pays_the_publish_the_next_ones_only_push(broker):
    """A failed publish costs its request ~0.3 s of retries: the next deliveries of the
    cooldown are only pushed, and the sweeper starts a drainer after it."""
    broker.fail("drain_webhook_inbox", error=ConnectionError("broker down"))
    ids = deliver(3)
    assert len(broker.refused("drain_webhook_inbox")) == 1 and drainers(broker) == []
    assert queued() == ids
    assert statuses(ids) == ["received"] * 3

    broker.recover()
    broker.clear()
    redis_client().delete(inbox.SLOT.format("live", 0))  # the cooldown is over
    intake.webhooks_sweep()
    assert len(drainers(broker)) == 1
    drain_webhook_inbox(*drainers(broker)[0])
    assert statuses(ids) == ["processed"] * 3


def test_redis_and_broker_down_one_delivery_pays_the_publish_then_a_pause(redis_down, broker):
    broker.fail(error=ConnectionError("broker down"))
    ids = deliver(3)
    assert len(broker.refused("process_webhook")) == 1
    intake._publish_paused_until = 0.0  # the pause is over
    deliver(1)
    assert len(broker.refused("process_webhook")) == 2
    # All stored and left for the sweeper.
    assert statuses(ids) == ["received"] * 3


def test_a_redelivered_drainer_takes_its_slot_back(broker):
    """Its worker died mid-turn: the slot still names it, and it carries on."""
    ids = deliver(2)
    slot, token = drainers(broker)[-1]
    redis_client().set(inbox.SLOT.format("live", slot), token, ex=60)
    assert drain_webhook_inbox(slot, token) == 2
    assert statuses(ids) == ["processed"] * 2


def test_inbox_unreachable_falls_back_to_publishing_the_delivery(redis_down, broker):
    [log_id] = deliver(1)
    assert broker.of("process_webhook") == [(log_id,)]
    assert drainers(broker) == []


def test_an_error_mid_batch_returns_the_unprocessed_ids_and_frees_the_slot(broker):
    ids = deliver(4)
    with database_restarts_at(ids, 1) as restarted, pytest.raises(OperationalError):
        drain_webhook_inbox(*drainers(broker)[-1])
    assert restarted == [ids[1]]
    # The two it never reached wait at the head of the inbox, oldest first; the one that
    # failed stays `received` for the sweeper; the slot is free for the next drainer.
    assert queued() == ids[2:]
    assert statuses(ids) == ["processed", "received", "received", "received"]
    assert redis_client().get(inbox.SLOT.format("live", 0)) is None
    deliver(1)
    assert len(drainers(broker)) == 2


def test_a_superseded_drainer_stops_without_touching_the_inbox(broker):
    deliver(2)
    slot, token = drainers(broker)[-1]
    redis_client().set(inbox.SLOT.format("live", slot), "a-newer-drainer", ex=60)
    assert drain_webhook_inbox(slot, token) == 0
    assert inbox.waiting("live") == 2
    assert redis_client().get(inbox.SLOT.format("live", slot)) == b"a-newer-drainer"


def test_in_process_tasks_never_use_the_inbox(settings, broker):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    [log_id] = deliver(1)
    assert broker.of("process_webhook") == [(log_id,)]
    assert inbox.waiting("live") == 0
