"""Helpers for the webhook and ingestion tests: store or deliver a fixture for real, dump what it
stored, and run a command for its JSON."""

import io
import json
from datetime import UTC, datetime

from django.core.management import call_command

from tests.meta import load, post_signed, wire
from whatsapp.models import (
    Contact,
    ContactIdentity,
    HistoryChunk,
    HistorySync,
    Message,
    MessageStatus,
    PhoneNumber,
    TemplateStatusEvent,
    WebhookLog,
)
from whatsapp.webhooks.intake import webhook_store
from whatsapp.webhooks.process import webhook_process


def deliver(client, body: dict | bytes, *, expect: str = WebhookLog.Status.PROCESSED) -> WebhookLog:
    """POSTs a signed delivery to the real URL, then runs the processing task function."""
    assert post_signed(client, body).status_code == 200
    log = WebhookLog.objects.latest("id")
    assert webhook_process(log.pk) == expect, log.last_error
    log.refresh_from_db()
    return log


def ts(value: int) -> datetime:
    """A Meta `timestamp` (epoch seconds) as the aware datetime ingestion stores."""
    return datetime.fromtimestamp(value, tz=UTC)


def _contact_key(contact_id: int | None):
    if contact_id is None:
        return None
    c = Contact.objects.get(pk=contact_id)
    return (c.organization.slug, c.user_id, c.wa_id)


def canonical_dump() -> dict:
    """Everything ingestion stores, without surrogate ids or wall-clock times."""
    contacts = sorted(
        (c.organization.slug, c.user_id, c.wa_id, c.username, c.profile_name,
         str(c.profile_name_at), c.saved_name, c.in_address_book, str(c.address_book_at),
         str(c.last_inbound_at), str(c.human_takeover_at), str(c.referral), str(c.referral_at))
        for c in Contact.objects.select_related("organization")
    )
    identities = sorted(
        (i.organization.slug, i.kind, i.value, _contact_key(i.contact_id), str(i.first_seen_at),
         str(i.superseded_at))
        for i in ContactIdentity.objects.select_related("organization")
    )
    messages = sorted(
        (m.wamid, m.organization_id, m.config_id, _contact_key(m.contact_id), m.direction,
         m.source, m.type, str(m.timestamp), m.status, str(m.status_at), m.body, m.media_id,
         m.reply_to_wamid, m.target_wamid, str(m.referral), str(m.errors), str(m.edited_at),
         str(m.revoked_at), str(sorted(m.raw.items())))
        for m in Message.objects.all()
    )
    statuses = sorted(
        (s.wamid, s.status, str(s.timestamp), s.config_id, str(s.pricing), str(s.errors))
        for s in MessageStatus.objects.all()
    )
    chunks = sorted(
        (h.phone_number_id, h.phase, h.chunk_order, h.progress, h.thread_count, h.message_count)
        for h in HistoryChunk.objects.all()
    )
    syncs = sorted(
        (s.config_id, s.status, s.progress, s.phase, s.chunks_received, s.messages_imported,
         s.error_code, s.error_message)
        for s in HistorySync.objects.all()
    )
    templates = sorted(
        (t.waba_id, t.template_id, t.event, str(t.event_at), t.reason, str(t.info))
        for t in TemplateStatusEvent.objects.all()
    )
    configs = sorted(
        (c.phone_number_id, c.messages_in_count, c.messages_out_count, str(c.last_message_at),
         c.messaging_limit, c.quality_event, str(c.quality_event_at))
        for c in PhoneNumber.objects.all()
    )
    return {"contacts": contacts, "identities": identities, "messages": messages,
            "statuses": statuses, "chunks": chunks, "syncs": syncs, "templates": templates,
            "configs": configs}


def stored(body: dict | None = None) -> WebhookLog:
    """A signed delivery stored as the webhook view stores it, not processed yet."""
    raw = wire(body or load("messages_text_inbound.json"))
    return WebhookLog.objects.get(pk=webhook_store(body=raw, headers={}))


def run_command(*args) -> dict:
    """A management command run with --json, its output parsed."""
    out = io.StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue())
