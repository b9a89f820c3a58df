"""The Redis inbox between the webhook view and the workers (whatsapp/inbox.py), on real Redis.

Drainer tasks are run here as plain function calls; the publishes they make (a helper, a
hand-over, a retry) are captured instead of sent. A real worker drains the inbox in
tests/reliability and tests/e2e.
"""

from unittest import mock

import pytest

from config.cache import redis_client
from tests.meta import load, wire
from whatsapp.models import WebhookLog
from whatsapp.tasks import drain_webhook_inbox
from whatsapp.webhooks import inbox, intake, process

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


def statuses(ids) -> list[str]:
    by_id = dict(WebhookLog.objects.filter(pk__in=ids).values_list("pk", "status"))
    return [by_id[i] for i in ids]


@pytest.fixture
def started():
    """Drainer tasks published (captured, not sent), as (slot, token) pairs."""
    with mock.patch("whatsapp.tasks.drain_webhook_inbox.delay") as delay:
        yield delay


def test_one_drainer_for_a_burst_processes_every_delivery_and_frees_its_slot(started):
    ids = deliver(5)
    # Five deliveries, one task published: the doorbell was already ringing for the others.
    assert started.call_count == 1
    slot, token = started.call_args.args
    assert slot == 0 and redis_client().llen(inbox.QUEUE) == 5

    assert drain_webhook_inbox(slot, token) == 5
    assert statuses(ids) == ["processed"] * 5
    assert redis_client().llen(inbox.QUEUE) == 0
    assert redis_client().get(inbox.SLOT.format(0)) is None
    # The next delivery finds the doorbell silent and starts a new drainer.
    deliver(1)
    assert started.call_count == 2


def test_a_backlog_calls_a_helper_into_the_next_slot(settings, started):
    settings.WHATSAPP_WEBHOOK_DRAIN_BATCH = 2
    ids = deliver(5)
    slot, token = started.call_args.args
    drain_webhook_inbox(slot, token)
    helper_slots = [call.args[0] for call in started.call_args_list[1:]]
    assert helper_slots == [1]
    assert statuses(ids) == ["processed"] * 5


def test_no_helper_beyond_the_configured_drainers(settings, started):
    settings.WHATSAPP_WEBHOOK_DRAIN_BATCH = 2
    settings.WHATSAPP_WEBHOOK_DRAINERS = 1
    deliver(5)
    drain_webhook_inbox(*started.call_args.args)
    assert started.call_count == 1


def test_a_drainer_hands_over_to_a_fresh_task_when_its_turn_is_over(settings, started):
    settings.WHATSAPP_WEBHOOK_DRAIN_SECONDS = 0
    ids = deliver(3)
    slot, token = started.call_args.args
    assert drain_webhook_inbox(slot, token) == 0
    # Nothing was lost: the ids still wait, the slot is still held, a fresh task has it.
    assert started.call_args.args == (slot, token) and started.call_count == 2
    assert redis_client().llen(inbox.QUEUE) == 3
    assert redis_client().get(inbox.SLOT.format(0)) == token.encode()
    assert statuses(ids) == ["received"] * 3


def test_a_failing_delivery_is_retried_later_and_the_others_go_on(started):
    ids = deliver(3)
    original = process.dispatch

    def boom_on_second(change, ctx):
        if change.entry_id == "901":
            raise KeyError("boom")
        return original(change, ctx)

    with mock.patch("whatsapp.webhooks.process.dispatch", side_effect=boom_on_second), \
            mock.patch("whatsapp.tasks.process_webhook.apply_async") as retry:
        drain_webhook_inbox(*started.call_args.args)
    assert statuses(ids) == ["processed", "failed", "processed"]
    retry.assert_called_once()
    assert retry.call_args.args == ((ids[1],),) and retry.call_args.kwargs["countdown"] >= 1


def test_broker_down_one_delivery_pays_the_publish_the_next_ones_only_push(started):
    """A failed publish costs its request ~0.3 s of retries: the next deliveries of the
    cooldown are only pushed, and the sweeper starts a drainer after it."""
    started.side_effect = ConnectionError("broker down")
    ids = deliver(3)
    assert started.call_count == 1
    assert redis_client().llen(inbox.QUEUE) == 3
    assert statuses(ids) == ["received"] * 3

    started.side_effect = None
    started.reset_mock()
    redis_client().delete(inbox.SLOT.format(0))  # the cooldown is over
    with mock.patch("whatsapp.tasks.process_webhook.delay"):
        intake.webhooks_sweep()
    assert started.call_count == 1
    drain_webhook_inbox(*started.call_args.args)
    assert statuses(ids) == ["processed"] * 3


def test_redis_and_broker_down_one_delivery_pays_the_publish_then_a_pause(redis_down,
                                                                        started):
    with mock.patch("whatsapp.tasks.process_webhook.delay",
                    side_effect=ConnectionError("broker down")) as delay:
        ids = deliver(3)
        assert delay.call_count == 1
        intake._publish_paused_until = 0.0  # the pause is over
        deliver(1)
        assert delay.call_count == 2
    # All stored and left for the sweeper.
    assert statuses(ids) == ["received"] * 3


def test_a_redelivered_drainer_takes_its_slot_back(started):
    """Its worker died mid-turn: the slot still names it, and it carries on."""
    ids = deliver(2)
    slot, token = started.call_args.args
    redis_client().set(inbox.SLOT.format(slot), token, ex=60)
    assert drain_webhook_inbox(slot, token) == 2
    assert statuses(ids) == ["processed"] * 2


def test_inbox_unreachable_falls_back_to_publishing_the_delivery(redis_down, started):
    with mock.patch("whatsapp.tasks.process_webhook.delay") as delay:
        [log_id] = deliver(1)
    delay.assert_called_once_with(log_id)
    assert started.call_count == 0


def test_an_error_mid_batch_returns_the_unprocessed_ids_and_frees_the_slot(started):
    from django.db import OperationalError

    ids = deliver(4)
    original = process.webhook_process
    calls = []

    def database_restarts_on_the_second(log_id):
        calls.append(log_id)
        if len(calls) == 2:
            raise OperationalError("server closed the connection unexpectedly")
        return original(log_id)

    with mock.patch("whatsapp.webhooks.inbox.webhook_process", database_restarts_on_the_second), \
            pytest.raises(OperationalError):
        drain_webhook_inbox(*started.call_args.args)
    # The two it never reached wait at the head of the inbox, oldest first; the one that
    # failed stays `received` for the sweeper; the slot is free for the next drainer.
    assert [int(i) for i in reversed(redis_client().lrange(inbox.QUEUE, 0, -1))] == ids[2:]
    assert statuses(ids) == ["processed", "received", "received", "received"]
    assert redis_client().get(inbox.SLOT.format(0)) is None
    deliver(1)
    assert started.call_count == 2


def test_a_superseded_drainer_stops_without_touching_the_inbox(started):
    deliver(2)
    slot, token = started.call_args.args
    redis_client().set(inbox.SLOT.format(slot), "a-newer-drainer", ex=60)
    assert drain_webhook_inbox(slot, token) == 0
    assert redis_client().llen(inbox.QUEUE) == 2
    assert redis_client().get(inbox.SLOT.format(slot)) == b"a-newer-drainer"


def test_in_process_tasks_never_use_the_inbox(settings, started):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    with mock.patch("whatsapp.tasks.process_webhook.delay") as delay:
        [log_id] = deliver(1)
    delay.assert_called_once_with(log_id)
    assert redis_client().llen(inbox.QUEUE) == 0
