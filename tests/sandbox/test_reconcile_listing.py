"""The sandbox serves `client_whatsapp_business_accounts` as Graph pages it, and a
PARTNER_ADDED lost on purpose is found by `reconcile_wabas` against it (issue 20 §4)."""

import json
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from whatsapp.models import Connection, WebhookLog

pytestmark = pytest.mark.django_db(transaction=True)

SYSTEM_USER_TOKEN = "EAAsandbox-system-user"


@pytest.fixture
def partner(sandbox, live_server, settings):
    settings.META_GRAPH_API_URL = f"{live_server.url}/sandbox/graph"
    settings.META_SYSTEM_USER_TOKEN = SYSTEM_USER_TOKEN
    settings.META_PARTNER_BUSINESS_ID = settings.SANDBOX_PARTNER_BUSINESS_ID
    return sandbox


def test_listing_pages_with_a_cursor_for_the_system_user_only(partner):
    for _ in range(3):
        partner.signup("cloud_one")
    path = f"{settings.SANDBOX_PARTNER_BUSINESS_ID}/client_whatsapp_business_accounts"

    first = partner.graph("GET", path, token=SYSTEM_USER_TOKEN, params={"limit": 2}).json()
    assert len(first["data"]) == 2 and "next" in first["paging"]
    second = partner.graph("GET", path, token=SYSTEM_USER_TOKEN, params={
        "limit": 2, "after": first["paging"]["cursors"]["after"]}).json()
    assert len(second["data"]) == 1 and "next" not in second["paging"]
    assert {w["id"] for w in first["data"]}.isdisjoint({w["id"] for w in second["data"]})

    _, business_token = partner.connected("cloud_one")
    refused = partner.graph("GET", path, token=business_token)
    assert refused.status_code >= 400 and "error" in refused.json()


def test_a_partner_added_lost_on_purpose_is_found_by_reconciliation(partner):
    # Meta's webhook never reaches us: every attempt fails and the sandbox gives up.
    partner.switches(webhook_url="http://127.0.0.1:9/unreachable", retry_delays=[0.1])
    signup = partner.signup("cloud_one")
    partner.wait_idle()
    assert not WebhookLog.objects.exists() and not Connection.objects.exists()

    out = StringIO()
    call_command("reconcile_wabas", "--json", stdout=out)

    report = json.loads(out.getvalue())
    assert [f["wabaId"] for f in report["findings"]] == [signup["waba_id"]]
    orphan = Connection.objects.orphans().get()
    assert orphan.waba_id == signup["waba_id"]
    assert orphan.owner_business_id == signup["business_id"]
