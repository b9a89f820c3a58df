"""One definition of the webhook backlog: the dashboard, `whatsapp_status` and the alerts agree,
and deliveries parked for a number are counted apart, never as backlog."""

import io
import json

from django.core.management import call_command
from django.utils import timezone

from whatsapp.backoffice.dashboard import Period, dashboard_context
from whatsapp.models import WebhookLog


def _log(status: str, **extra) -> WebhookLog:
    return WebhookLog.objects.create(raw_body=b"{}", body_sha256="0" * 64, headers={},
                                     signature_valid=True, status=status, **extra)


def test_dashboard_and_whatsapp_status_count_the_same_backlog(db):
    for status in ("received", "processing", "failed"):
        _log(status, locked_until=timezone.now())
    _log("parked", parked_phone_number_id="304000000000101")
    _log("processed")
    _log("dead")

    dashboard = dashboard_context(period=Period.from_request("30"))
    out = io.StringIO()
    call_command("whatsapp_status", "--json", stdout=out)
    status = json.loads(out.getvalue())["platform"]

    assert dashboard["backlog"] == status["webhook_backlog"] == 3
    assert dashboard["parked"] == status["webhooks"]["parked"] == 1
    assert WebhookLog.objects.backlog().count() == 3
