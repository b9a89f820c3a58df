"""BSUID changes as the Meta sandbox sends them today (a `system` message on `messages`, never
the `user_id_update` field), over real HTTP to the product's webhook URL."""

import pytest

from tests.sandbox.conftest import wait_for
from whatsapp.models import Contact, Message, WebhookLog
from whatsapp.webhooks.process import webhook_process

pytestmark = pytest.mark.django_db(transaction=True)


def event(meta, tenant, kind: str) -> None:
    """Fires one sandbox event for the tenant's number and processes what reached the product."""
    before = WebhookLog.objects.count()
    number = tenant["config"].phone_number_id
    response = meta.api("POST", "events", json={"kind": kind, "phone_number_id": number})
    assert response.status_code == 202, response.text
    rows = wait_for(lambda: list(WebhookLog.objects.order_by("id"))[before:] or None,
                    message=f"{kind} webhook")
    for row in rows:
        assert webhook_process(row.pk) == "processed"


def test_user_changed_number_from_the_sandbox_moves_the_lead(meta, tenant):
    event(meta, tenant, "text")
    lead = Contact.objects.get(organization=tenant["org"])
    old_bsuid = lead.user_id
    assert lead.wa_id == "5511987654321"

    event(meta, tenant, "user_changed_number")
    lead.refresh_from_db()
    assert lead.wa_id == "5511912345678" and lead.user_id not in ("", old_bsuid)
    assert set(lead.identities.values_list("value", flat=True)) >= {
        old_bsuid, "5511987654321", "5511912345678"}
    assert list(Message.objects.values_list("type", flat=True)) == ["text"]
    # The sandbox no longer sends the retired field.
    assert not [r for r in WebhookLog.objects.all() if b'"user_id_update"' in bytes(r.raw_body)]

    event(meta, tenant, "text")  # a late message under the old ids: the same lead
    assert Contact.objects.filter(organization=tenant["org"]).count() == 1
    assert lead.messages.count() == 2
