"""`manage.py sandbox_send_event`: signed like Meta, loopback only unless told otherwise."""

import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from tests.meta import change_value
from whatsapp.models import WebhookLog
from whatsapp.webhooks.signatures import is_valid_signature

pytestmark = pytest.mark.django_db(transaction=True)


def test_sends_a_signed_event_the_product_accepts(live_server):
    out = StringIO()
    url = f"{live_server.url}/api/v1/whatsapp/webhook"
    call_command("sandbox_send_event", "partner_added", "--url", url, "--waba", "102999",
                 "--tracking-code", "abc-123", "--count", "2", "--json", stdout=out)

    printed = json.loads(out.getvalue())
    assert [d["status"] for d in printed["deliveries"]] == [200, 200]
    rows = list(WebhookLog.objects.order_by("id"))
    assert len(rows) == 2
    raw = bytes(rows[0].raw_body)
    assert raw == printed["deliveries"][0]["body"].encode()
    assert is_valid_signature(raw, rows[0].headers["X-Hub-Signature-256"],
                              settings.META_APP_SECRET)
    value = change_value(json.loads(raw))
    assert value["waba_info"]["waba_id"] == "102999"
    assert value["sessionInfo"] == {"trackingCode": "abc-123"}


def test_plain_output_shows_the_status(live_server):
    out = StringIO()
    call_command("sandbox_send_event", "text", "--url",
                 f"{live_server.url}/api/v1/whatsapp/webhook", stdout=out)
    assert out.getvalue().startswith("200 text → ")


def test_refuses_a_remote_url_without_allow_remote():
    with pytest.raises(CommandError, match="not a loopback address"):
        call_command("sandbox_send_event", "text", "--url", "https://example.com/webhook")
    assert not WebhookLog.objects.exists()


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(CommandError) as error:
        call_command("sandbox_send_event", "bogus", "--url", "http://127.0.0.1:9/x")
    assert "partner_added" in str(error.value) and "history_declined" in str(error.value)


def test_help_explains_it():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    result = subprocess.run([sys.executable, "manage.py", "sandbox_send_event", "--help"],
                            cwd=settings.BASE_DIR, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "X-Hub-Signature-256" in result.stdout and "--allow-remote" in result.stdout
    assert "contacts_add" in result.stdout
