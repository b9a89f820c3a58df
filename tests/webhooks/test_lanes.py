"""Lanes and fairness (issue 17): live and bulk deliveries wait in separate inboxes and run as
separate tasks on separate queues; inside a lane, tenants take turns. On real Redis; drainers
run as plain calls (their publishes captured by the `broker` fixture). The worker that serves
only the bulk queues is a real one: tests/reliability/test_lanes.py."""

import threading
from collections import Counter

import pytest
from django.conf import settings as django_settings
from django.db import connection as db_connection

from config.cache import redis_client
from tests.meta import load, post_signed, wire
from tests.webhooks.test_inbox import queued, statuses
from whatsapp.core import lanes
from whatsapp.models import WebhookLog
from whatsapp.webhooks import inbox, intake

pytestmark = pytest.mark.django_db

A, B, C = "810000000000001", "820000000000002", "830000000000003"


def body(tenant: str, field: str = "some_future_field", n: int = 0) -> bytes:
    """A delivery of `tenant`'s WABA with one change of `field` (stored only when processed,
    as every field we do not ingest)."""
    data = load("unknown_field.json")
    data["entry"][0]["id"] = tenant
    change = data["entry"][0]["changes"][0]
    change["field"], change["value"]["n"] = field, n
    return wire(data)


def deliver(tenant: str, count: int = 1, field: str = "some_future_field") -> list[int]:
    """Stored and announced as the webhook view does after its commit."""
    ids = []
    for n in range(count):
        raw = body(tenant, field, n)
        ids.append(intake.webhook_store(body=raw, headers={}))
        intake.webhook_announce(ids[-1], body=raw)
    return ids


def drain_all(lane: str) -> list[int]:
    """Runs the lane's drainer in slot 0 until its inbox is empty; the ids in processing order."""
    order: list[int] = []
    redis_client().delete(inbox.SLOT.format(lane, 0))
    inbox.drain(lane, 0, "test-drainer", on_result=lambda log_id, status: order.append(log_id))
    return order


# --- Classification -----------------------------------------------------------------------------

@pytest.mark.parametrize(("fixture", "lane"), [
    ("history_phase1_chunk1.json", "bulk"),
    ("smb_app_state_sync_add.json", "bulk"),
    ("messages_text_inbound.json", "live"),
    ("messages_status_read.json", "live"),
    ("smb_message_echoes_text.json", "live"),
    ("account_update_partner_added.json", "live"),
    ("message_template_status_update_approved.json", "live"),
    ("phone_number_quality_update_throughput_upgrade.json", "live"),
    ("unknown_field.json", "live"),
])
def test_each_delivery_waits_in_its_lane_under_its_waba(client, broker, fixture, lane,
                                                         django_capture_on_commit_callbacks):
    data = load(fixture)
    with django_capture_on_commit_callbacks(execute=True):
        assert post_signed(client, data).status_code == 200
    log = WebhookLog.objects.get()
    other = "live" if lane == "bulk" else "bulk"
    assert queued(lane) == [log.pk] and queued(other) == []
    waba = data["entry"][0]["id"]
    assert redis_client().lrange(inbox.TENANT.format(lane) + waba, 0, -1) == [str(log.pk).encode()]
    # Its lane's drainer was started, and it is routed to its lane's Celery queue.
    task = inbox.DRAIN_TASK[lane]
    assert len(broker.of(task)) == 1 and broker.of(inbox.DRAIN_TASK[other]) == []
    assert django_settings.CELERY_TASK_ROUTES[f"whatsapp.tasks.{task}"] == {"queue": lane}


def test_a_delivery_mixing_bulk_and_live_changes_goes_live():
    data = load("unknown_field.json")
    history = load("history_phase1_chunk1.json")["entry"][0]["changes"][0]
    data["entry"][0]["changes"].insert(0, history)
    raw = wire(data)
    assert lanes.fields_in(raw) == ["history", "some_future_field"]
    assert lanes.lane_of(lanes.fields_in(raw)) == "live"
    assert lanes.lane_of(["history", "smb_app_state_sync"]) == "bulk"


def test_a_field_name_inside_a_message_text_is_not_a_field():
    data = load("messages_text_inbound.json")
    data["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = (
        'copie isto: "field":"history"')
    assert lanes.fields_in(wire(data)) == ["messages"]


def test_lanes_switched_off_put_everything_in_the_live_lane(settings, broker):
    settings.WHATSAPP_LANES = False
    [history] = deliver(A, field="history")
    assert queued("live") == [history] and queued("bulk") == []
    assert len(broker.of("drain_webhook_inbox")) == 1 and broker.of("drain_webhook_bulk") == []


def test_every_task_has_a_route_and_unknown_ones_default_to_maintenance():
    from celery import current_app

    ours = {name for name in current_app.tasks
            if name.startswith(("whatsapp.tasks.", "ops.tasks."))}
    assert ours <= set(django_settings.CELERY_TASK_ROUTES)
    assert django_settings.CELERY_TASK_DEFAULT_QUEUE == "maintenance"
    queues = {route["queue"] for route in django_settings.CELERY_TASK_ROUTES.values()}
    assert queues == {"live", "bulk", "sending", "maintenance"}
    routes = django_settings.CELERY_TASK_ROUTES
    assert routes["whatsapp.tasks.send_outbound"] == {"queue": "sending"}
    assert routes["whatsapp.tasks.sync_templates"] == {"queue": "bulk"}
    assert routes["whatsapp.tasks.sweep_webhooks"] == {"queue": "maintenance"}


# --- Fairness -----------------------------------------------------------------------------------

def test_a_tenant_behind_another_tenants_burst_is_served_in_the_first_round(broker):
    burst = deliver(A, 60)  # 10,000 statuses after a campaign, in small
    [lead] = deliver(B)
    order = drain_all("live")
    assert sorted(order) == sorted(burst + [lead])
    # B's delivery is the second processed: right after A's first, not after A's sixty.
    assert order.index(lead) == 1
    # Each tenant's deliveries leave in arrival order.
    assert [i for i in order if i in burst] == burst


def test_three_tenants_take_turns_until_the_smaller_ones_are_done(broker):
    a, b, c = deliver(A, 6), deliver(B, 2), deliver(C, 3)
    assert drain_all("live") == [a[0], b[0], c[0], a[1], b[1], c[1], a[2], c[2], *a[3:]]


def test_history_chunks_of_one_tenant_do_not_hold_back_anothers(broker):
    chunks = deliver(A, 20, field="history")
    [contacts] = deliver(B, field="smb_app_state_sync")
    order = drain_all("bulk")
    assert order.index(contacts) == 1 and sorted(order) == sorted([*chunks, contacts])
    assert queued("live") == []


def test_a_tenant_that_arrives_mid_drain_joins_the_next_round(settings, broker):
    settings.WHATSAPP_WEBHOOK_DRAIN_BATCH = 4
    burst = deliver(A, 12)
    first = inbox.take("live", 4)
    assert [log_id for _, log_id in first] == burst[:4]
    [lead] = deliver(B)
    assert [log_id for _, log_id in inbox.take("live", 4)] == [burst[4], lead, *burst[5:7]]


def test_ids_put_back_keep_their_place_and_their_tenant(broker):
    a, b = deliver(A, 3), deliver(B, 2)
    taken = inbox.take("live", 3)
    assert [log_id for _, log_id in taken] == [a[0], b[0], a[1]]
    inbox._put_back("live", taken)
    assert queued("live") == [a[0], b[0], a[1], b[1], a[2]]
    assert inbox.waiting("live") == 5


def test_the_live_lane_skips_a_tenant_whose_bulk_import_is_running(broker):
    """The import locks the tenant's number rows: a live drainer would only wait on them."""
    a = deliver(A, 3)
    [lead] = deliver(B)
    redis_client().set(inbox.BUSY + A, 1, ex=60)
    assert drain_all("live") == [lead]  # and the drainer stops rather than wait
    assert queued("live") == a and not inbox.ready("live")
    redis_client().delete(inbox.BUSY + A)
    assert inbox.ready("live")
    assert drain_all("live") == a


def test_a_live_drainer_puts_back_what_it_took_of_a_tenant_that_became_busy(
        broker, monkeypatch):
    a, b = deliver(A, 3), deliver(B, 2)
    process = inbox.webhook_process
    order = []

    def import_starts_after_the_first(log_id):
        order.append(log_id)
        redis_client().set(inbox.BUSY + A, 1, ex=60)  # A's bulk import starts meanwhile
        return process(log_id)

    monkeypatch.setattr(inbox, "webhook_process", import_starts_after_the_first)
    drain_all("live")
    # A's first was under way; B's go on; A's others wait for the import, in their order.
    assert order == [a[0], b[0], b[1]]
    assert queued("live") == a[1:]


def test_a_bulk_drainer_marks_its_tenant_busy_then_wakes_the_live_lane(broker, monkeypatch):
    [chunk] = deliver(A, field="history")
    deliver(A, 2)
    busy_while_processing = []
    process = inbox.webhook_process

    def spy(log_id):
        busy_while_processing.append(redis_client().get(inbox.BUSY + A))
        return process(log_id)

    monkeypatch.setattr(inbox, "webhook_process", spy)
    # The live drainer the announcement started stopped, A's ids left (A was busy).
    redis_client().delete(inbox.SLOT.format("live", 0))
    broker.clear()
    assert drain_all("bulk") == [chunk]
    assert busy_while_processing == [str(chunk).encode()]
    assert redis_client().get(inbox.BUSY + A) is None
    assert len(broker.of("drain_webhook_inbox")) == 1  # the live lane is woken


# --- Exactly once ---------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_concurrent_drainers_process_every_delivery_exactly_once(settings, broker):
    settings.WHATSAPP_WEBHOOK_DRAIN_BATCH = 3
    settings.WHATSAPP_WEBHOOK_DRAINERS = 4
    ids = deliver(A, 25) + deliver(B, 10) + deliver(C, 5)
    for log_id in ids[::4]:  # announced twice (a sweep while they waited)
        intake.webhook_announce(log_id, body=body(A))
    outcomes: list[tuple[int, str]] = []
    barrier = threading.Barrier(4)

    def drainer(slot: int) -> None:
        try:
            barrier.wait()
            redis_client().delete(inbox.SLOT.format("live", slot))
            inbox.drain("live", slot, f"token-{slot}",
                        on_result=lambda log_id, status: outcomes.append((log_id, status)))
        finally:
            db_connection.close()

    threads = [threading.Thread(target=drainer, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    processed = Counter(log_id for log_id, status in outcomes if status == "processed")
    assert processed == Counter(ids)  # each once, the duplicates skipped
    assert statuses(ids) == ["processed"] * len(ids)
    assert inbox.waiting("live") == 0


# --- Sweeps, retries, unpark ----------------------------------------------------------------

@pytest.mark.parametrize("redis_up", [True, False])
def test_the_sweeper_sends_each_row_to_its_lanes_queue(settings, broker, request, redis_up):
    settings.WHATSAPP_WEBHOOK_SWEEP_STALE_SECONDS = 0
    if not redis_up:
        request.getfixturevalue("redis_down")
    # Stored, never announced (the process died between the commit and the announcement).
    history = intake.webhook_store(body=body(A, "history"), headers={})
    message = intake.webhook_store(body=body(B, "messages"), headers={})
    assert intake.webhooks_sweep() == 2
    assert broker.of("process_webhook_bulk") == [(history,)]
    assert broker.of("process_webhook") == [(message,)]
    routes = django_settings.CELERY_TASK_ROUTES
    assert routes["whatsapp.tasks.process_webhook_bulk"] == {"queue": "bulk"}
    assert routes["whatsapp.tasks.process_webhook"] == {"queue": "live"}


def test_a_failed_bulk_delivery_is_retried_in_the_bulk_queue(broker, monkeypatch):
    from whatsapp.tasks import drain_webhook_bulk
    from whatsapp.webhooks.dispatch import FIELD_HANDLERS

    def boom(change, ctx):
        raise KeyError("boom")

    monkeypatch.setitem(FIELD_HANDLERS, "history", boom)
    [chunk] = deliver(A, field="history")
    drain_webhook_bulk(*broker.of("drain_webhook_bulk")[-1])
    assert statuses([chunk]) == ["failed"]
    assert broker.of("process_webhook_bulk") == [(chunk,)] and broker.of("process_webhook") == []
