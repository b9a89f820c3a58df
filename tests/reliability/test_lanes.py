"""Lanes with real processes (issue 17): a worker that serves only the bulk queues processes
bulk deliveries and maintenance tasks, and never takes a live delivery; the live one waits for
a worker serving `live`. Web, workers and Redis are real (tests/reliability/conftest.py)."""

from tests.support import wait_for
from whatsapp.models import WebhookLog

from .conftest import envelope, post

HISTORY = {"messaging_product": "whatsapp",
           "metadata": {"display_phone_number": "5511900000000",
                        "phone_number_id": "304000000000999"},
           "history": []}


def status_of(log_id: int) -> str:
    return WebhookLog.objects.values_list("status", flat=True).get(pk=log_id)


def test_a_bulk_only_worker_never_takes_a_live_delivery(stack):
    stack.start_web()
    stack.start_worker("bulk-worker", queues="bulk,maintenance")
    assert post(stack.web_url, envelope("test_noop", {"n": 1})).status_code == 200
    assert post(stack.web_url, envelope("history", HISTORY)).status_code == 200
    live, bulk = WebhookLog.objects.order_by("pk").values_list("pk", flat=True)
    assert WebhookLog.objects.get(pk=bulk).fields == ["history"]

    # The history chunk is taken by the bulk worker (parked: nobody owns its number yet).
    wait_for(lambda: status_of(bulk) != WebhookLog.Status.RECEIVED, timeout=30,
             message="the bulk worker to process the history chunk")
    # The sweeper (maintenance, also served by this worker) re-announces the live delivery in
    # the live lane, where this worker never looks.
    sweep = stack.send("whatsapp.tasks.sweep_webhooks")
    wait_for(lambda: stack.task_finished(sweep), timeout=30, message="the sweep to run")
    assert status_of(bulk) == WebhookLog.Status.PARKED
    assert status_of(live) == WebhookLog.Status.RECEIVED

    stack.start_worker("live-worker", queues="live,sending")
    wait_for(lambda: status_of(live) == WebhookLog.Status.PROCESSED, timeout=30,
             message="the live worker to process the live delivery")
