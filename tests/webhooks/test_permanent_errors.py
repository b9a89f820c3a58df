"""Errors another attempt cannot fix are dead on the first attempt, visible and replayable;
transient ones keep the backoff (issue 15 §5). Through the real webhook URL, real signatures."""

import copy

import pytest
from django.db import connection
from django.test import Client

from tests.factories import fixture_numbers
from tests.ingest_support import deliver, run_command
from tests.meta import change_value, load, partner_added, wire
from tests.support import other_session
from whatsapp.models import Connection, Message, WebhookLog

pytestmark = pytest.mark.django_db


def inbound_text(text: str, *, timestamp: str = "1790000100") -> dict:
    body = copy.deepcopy(load("messages_text_inbound.json"))
    message = change_value(body)["messages"][0]
    message["text"]["body"], message["timestamp"] = text, timestamp
    return body


def test_owner_business_id_of_80_characters_is_dead_at_once_visible_and_replayable(
        client, django_user_model):
    log = deliver(client, partner_added(owner="2" * 80), expect=WebhookLog.Status.DEAD)
    assert (log.attempts, log.next_attempt_at) == (1, None)
    assert "waba_info.owner_business_id has 80 characters" in log.last_error
    assert "PayloadError" in log.last_error and "Traceback" in log.traceback
    assert not Connection.objects.exists()  # nothing cut to fit, nothing half-stored
    support = Client()
    support.force_login(django_user_model.objects.create_superuser("ops@q.test", "ops@q.test",
                                                                   "x"))
    page = support.get("/admin/whatsapp/webhooklog/?status__exact=dead")
    assert b"owner_business_id has 80 characters" in page.content

    result = run_command("replay_webhooks", "--ids", str(log.pk))
    assert result["ids"] == [log.pk]
    log.refresh_from_db()
    assert (log.status, log.attempts, log.last_error) == ("received", 0, "")


def test_value_out_of_range_for_its_column_is_dead_at_once_not_retried_for_hours(client):
    """A value PostgreSQL refuses (DataError: integer out of range) is not retried."""
    fixture_numbers()
    body = copy.deepcopy(load("history_phase1_chunk1.json"))
    change_value(body)["history"][0]["metadata"]["chunk_order"] = 99_999_999_999
    log = deliver(client, body, expect=WebhookLog.Status.DEAD)
    assert (log.attempts, log.next_attempt_at) == (1, None)
    assert log.last_error.startswith("DataError") and "out of range" in log.last_error, \
        log.last_error
    assert not Message.objects.exists()  # the delivery's one transaction rolled back


def test_nul_in_a_message_text_is_stripped_and_the_message_stored(client):
    numbers = fixture_numbers()
    raw = wire(inbound_text("Olá\u0000, ainda está disponível?"))
    assert b"\\u0000" in raw
    log = deliver(client, raw)
    assert (log.status, log.attempts) == ("processed", 1)
    assert Message.objects.get(config=numbers["A"]).body == "Olá, ainda está disponível?"
    assert bytes(log.raw_body) == raw  # the stored delivery keeps Meta's bytes


@pytest.mark.django_db(transaction=True)
def test_lock_timeout_is_transient_and_keeps_the_backoff(client, settings):
    """A real lock timeout (another session holds the number's row) is retried later."""
    settings.WHATSAPP_WEBHOOK_MAX_ATTEMPTS = 8
    numbers = fixture_numbers()
    holder = other_session()
    try:
        holder.execute("SELECT 1 FROM whatsapp_configs WHERE id = %s FOR UPDATE",
                       [numbers["A"].pk])
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        log = deliver(client, inbound_text("Oi"), expect=WebhookLog.Status.FAILED)
    finally:
        holder.rollback()
        holder.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert log.attempts == 1 and log.next_attempt_at is not None
    assert log.last_error.startswith("OperationalError"), log.last_error
