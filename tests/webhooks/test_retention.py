"""Retention of raw bodies (issue 15 §8, LGPD): processed deliveries older than
WHATSAPP_WEBHOOK_RETENTION_DAYS lose their body, keep their row and hash; unresolved ones keep
everything; a purged delivery cannot be replayed and says so in pt-BR."""

import hashlib
import io
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from ops.schedules import schedules_ensure
from tests.ingest_support import run_command, stored
from tests.meta import load, partner_added, wire
from whatsapp.models import WebhookLog
from whatsapp.tasks import purge_webhook_bodies

pytestmark = pytest.mark.django_db


def delivery(status: str, *, age_days: float) -> WebhookLog:
    log = stored(partner_added())
    WebhookLog.objects.filter(pk=log.pk).update(
        status=status, received_at=timezone.now() - timedelta(days=age_days))
    return WebhookLog.objects.get(pk=log.pk)


def bodies() -> dict[int, bytes | None]:
    return {pk: None if raw is None else bytes(raw)
            for pk, raw in WebhookLog.objects.values_list("pk", "raw_body")}


@pytest.fixture
def deliveries() -> dict[str, WebhookLog]:
    return {
        "old processed": delivery("processed", age_days=31),
        "older processed": delivery("processed", age_days=400),
        "recent processed": delivery("processed", age_days=29),
        "old dead": delivery("dead", age_days=31),
        "old failed": delivery("failed", age_days=31),
        "old parked": delivery("parked", age_days=31),
        "old received": delivery("received", age_days=31),
    }


def test_purge_removes_only_old_processed_bodies_and_keeps_row_and_hash(deliveries):
    before = bodies()
    dry = run_command("purge_webhook_bodies", "--dry-run")
    assert (dry["dry_run"], dry["days"], dry["purged"]) == (True, 30, 2)
    assert bodies() == before

    result = run_command("purge_webhook_bodies", "--batch-size", "1")
    assert (result["purged"], result["batches"]) == (2, 2)
    after = bodies()
    purged = {deliveries["old processed"].pk, deliveries["older processed"].pk}
    for name, log in deliveries.items():
        if log.pk in purged:
            assert after[log.pk] is None, name
        else:
            assert after[log.pk] == before[log.pk], name
    log = WebhookLog.objects.get(pk=deliveries["old processed"].pk)
    assert log.body_sha256 == hashlib.sha256(wire(partner_added())).hexdigest()
    assert log.status == "processed" and log.body_purged_at is not None
    assert run_command("purge_webhook_bodies")["purged"] == 0  # nothing left: idempotent


def test_retention_days_come_from_the_setting_and_the_beat_task_runs_it(deliveries, settings):
    settings.WHATSAPP_WEBHOOK_RETENTION_DAYS = 28
    assert purge_webhook_bodies() == 3  # the 29-day-old one too
    assert bodies()[deliveries["recent processed"].pk] is None
    schedules_ensure(PeriodicTask, IntervalSchedule, CrontabSchedule)
    entry = PeriodicTask.objects.get(name="webhook body retention")
    assert entry.task == "whatsapp.tasks.purge_webhook_bodies" and entry.enabled


def test_text_output_is_portuguese(deliveries):
    out = io.StringIO()
    call_command("purge_webhook_bodies", "--dry-run", stdout=out)
    assert "2 corpos de entregas processadas" in out.getvalue()


def test_purged_delivery_refuses_replay_in_portuguese_and_the_admin_shows_it(
        deliveries, client, django_user_model):
    call_command("purge_webhook_bodies", stdout=io.StringIO())
    purged = deliveries["old processed"]
    with pytest.raises(CommandError, match="não podem ser reprocessadas: o corpo bruto foi "
                                           "removido pela retenção"):
        call_command("replay_webhooks", "--ids", str(purged.pk), stdout=io.StringIO())
    assert WebhookLog.objects.get(pk=purged.pk).status == "processed"

    staff = django_user_model.objects.create_superuser("ops@q.test", "ops@q.test", "x")
    client.force_login(staff)
    page = client.get(f"/admin/whatsapp/webhooklog/{purged.pk}/change/")
    assert page.status_code == 200
    assert "Removido em" in page.content.decode()
    dead = deliveries["old dead"]
    response = client.post("/admin/whatsapp/webhooklog/", {
        "action": "replay_selected", "_selected_action": [purged.pk, dead.pk]}, follow=True)
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("1 entregas não podem ser reprocessadas" in t and str(purged.pk) in t
               for t in texts), texts
    assert WebhookLog.objects.get(pk=dead.pk).status == "received"  # the other one replayed
    assert WebhookLog.objects.get(pk=purged.pk).raw_body is None


def test_a_purged_row_that_is_reset_anyway_dies_with_a_clear_error(deliveries):
    from whatsapp.webhooks.process import webhook_process

    call_command("purge_webhook_bodies", stdout=io.StringIO())
    pk = deliveries["old processed"].pk
    WebhookLog.objects.filter(pk=pk).update(status="received")  # e.g. by hand in psql
    assert webhook_process(pk) == "dead"
    assert "purged" in WebhookLog.objects.get(pk=pk).last_error


def test_new_deliveries_are_stored_with_their_body():
    log = stored(load("messages_text_inbound.json"))
    assert bytes(log.raw_body) == wire(load("messages_text_inbound.json"))
    assert log.body_purged_at is None
