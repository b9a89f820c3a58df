"""Replaying stored deliveries: the command, the admin action, and support finding a delivery."""

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditLog
from tests.ingest_support import run_command, stored
from tests.meta import load, post_signed, wire
from whatsapp.models import Connection, WebhookLog
from whatsapp.webhooks import process

pytestmark = pytest.mark.django_db


# --- replay ---------------------------------------------------------------------------------
def test_replay_command_selects_resets_enqueues_and_audits(broker,
                                                          django_capture_on_commit_callbacks):
    dead, processed, other = stored(), stored(), stored(load("account_update_partner_added.json"))
    WebhookLog.objects.filter(pk=dead.pk).update(status="dead", attempts=8, last_error="X",
                                                 traceback="tb", fields=["messages"])
    WebhookLog.objects.filter(pk=processed.pk).update(status="processed", fields=["messages"])
    dry = run_command("replay_webhooks", "--dead", "--dry-run")
    assert dry == {"dry_run": True, "matched": 1, "ids": [dead.pk]}
    with django_capture_on_commit_callbacks(execute=True):
        result = run_command("replay_webhooks", "--field", "messages", "--since", "1h")
    assert result["replayed"] == 2 and sorted(result["ids"]) == sorted([dead.pk, processed.pk])
    assert sorted(broker.of("process_webhook")) == sorted([(dead.pk,), (processed.pk,)])
    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.last_error, dead.traceback) == ("received", 0, "", "")
    assert bytes(dead.raw_body) == wire(load("messages_text_inbound.json"))
    entry = AuditLog.objects.get(action=AuditLog.Action.WEBHOOK_REPLAYED)
    assert entry.actor_label == "manage.py" and entry.metadata["count"] == 2
    assert WebhookLog.objects.get(pk=other.pk).status == "received"


@pytest.mark.parametrize("args,message", [
    ([], "Select something"),
    (["--ids", "1,x"], "comma-separated numbers"),
    (["--ids", "999999"], "No webhook deliveries with ids"),
    (["--since", "yesterday"], "is not a date"),
])
def test_replay_command_errors_are_clear(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("replay_webhooks", *args)


def test_replaying_a_processed_delivery_is_harmless(client):
    body = load("account_update_partner_added.json")
    post_signed(client, body)
    log = WebhookLog.objects.get()
    assert process.webhook_process(log.pk) == "processed"
    run_command("replay_webhooks", "--ids", str(log.pk))
    assert process.webhook_process(log.pk) == "processed"
    assert Connection.objects.count() == 1
    assert AuditLog.objects.filter(action=AuditLog.Action.WABA_ORPHANED).count() == 1


def test_admin_shows_dead_delivery_with_error_and_replays_it(client, django_user_model, broker,
                                                             django_capture_on_commit_callbacks):
    staff = django_user_model.objects.create_superuser("ops@q.test", "ops@q.test", "x")
    client.force_login(staff)
    log = stored()
    WebhookLog.objects.filter(pk=log.pk).update(status="dead", last_error="KeyError: 'boom'")
    page = client.get("/admin/whatsapp/webhooklog/?status__exact=dead")
    assert page.status_code == 200 and b"KeyError" in page.content
    assert client.get(f"/admin/whatsapp/webhooklog/{log.pk}/change/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/whatsapp/webhooklog/", {
            "action": "replay_selected", "_selected_action": [log.pk]})
    assert response.status_code == 302
    assert broker.of("process_webhook") == [(log.pk,)]
    assert WebhookLog.objects.get(pk=log.pk).status == "received"
    assert AuditLog.objects.get(action="WEBHOOK_REPLAYED").actor == staff
    # The raw row itself stays read-only.
    assert client.post(f"/admin/whatsapp/webhooklog/{log.pk}/change/", {}).status_code == 403


def test_support_finds_a_delivery_by_its_body_hash(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("h@q.test", "h@q.test", "x"))
    wanted, other = stored(), stored(load("account_update_partner_added.json"))
    page = client.get("/admin/whatsapp/webhooklog/", {"q": wanted.body_sha256})
    assert page.status_code == 200
    found = [log.pk for log in page.context["cl"].result_list]
    assert found == [wanted.pk] and other.pk not in found
