"""Concurrent duplicate deliveries against real PostgreSQL row locks and unique indexes."""

import threading

import pytest
from django.db import connection as db_connection

from audit.models import AuditLog
from tests.meta import load, partner_added, post_signed
from whatsapp.models import Connection, WebhookLog
from whatsapp.onboarding.signup import onboarding_start
from whatsapp.webhooks.process import webhook_process

pytestmark = pytest.mark.django_db(transaction=True)


def process_concurrently(log_ids: list[int]) -> list[str]:
    barrier = threading.Barrier(len(log_ids))
    results: list[str] = []

    def work(log_id: int) -> None:
        try:
            barrier.wait()
            results.append(webhook_process(log_id))
        finally:
            db_connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in log_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


@pytest.mark.parametrize("with_tracking_code", [True, False])
def test_twenty_identical_partner_added_give_one_connection_and_one_audit(
    client, org, admin_user, with_tracking_code
):
    if with_tracking_code:
        onboarding = onboarding_start(organization=org, user=admin_user, redirect_path="/x")
        body = partner_added(tracking_code=onboarding.tracking_code)
        action = AuditLog.Action.WHATSAPP_CONNECTED
    else:
        body = load("account_update_partner_added.json")
        action = AuditLog.Action.WABA_ORPHANED
    for _ in range(20):
        assert post_signed(client, body).status_code == 200
    ids = list(WebhookLog.objects.values_list("pk", flat=True))

    results = process_concurrently(ids)

    assert results.count(WebhookLog.Status.PROCESSED) == 20, results
    assert Connection.objects.count() == 1
    assert AuditLog.objects.filter(action=action).count() == 1
    if with_tracking_code:
        assert Connection.objects.get().organization == org


def test_one_delivery_processed_by_twenty_workers_runs_once(client):
    post_signed(client, load("account_update_partner_added.json"))
    log_id = WebhookLog.objects.get().pk

    results = process_concurrently([log_id] * 20)

    assert results.count(WebhookLog.Status.PROCESSED) == 1
    assert results.count("skipped") == 19
    assert WebhookLog.objects.get().attempts == 1
