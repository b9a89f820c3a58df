"""Orphans found and matched (issue 20 §4): `reconcile_wabas` lists the WABAs shared with our
partner business (every page) and compares them with our connections; the claim screen ranks
the organizations whose signup was pending when an orphan arrived."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from audit.models import AuditLog
from ops.alerts import alerts_evaluate
from tests.factories import ConnectionFactory, OnboardingFactory, OrganizationFactory
from tests.meta import GRAPH
from tests.support import staff_client
from whatsapp.models import Connection, Onboarding

pytestmark = pytest.mark.django_db

PARTNER = "810000000000001"
LISTING = f"{GRAPH}/{PARTNER}/client_whatsapp_business_accounts"


@pytest.fixture(autouse=True)
def _partner_business(settings):
    settings.META_PARTNER_BUSINESS_ID = PARTNER
    settings.META_SYSTEM_USER_TOKEN = "EAAsystemuser"


def waba(waba_id: str, owner: str = "203000000000777") -> dict:
    return {"id": waba_id, "name": f"WABA {waba_id[-3:]}",
            "owner_business_info": {"id": owner, "name": "Imobiliária Sol"}}


def listing(graph, *pages: list[dict]) -> None:
    """Meta's listing in pages: each but the last has an `after` cursor and a `next` link."""
    for number, rows in enumerate(pages):
        paging = {"cursors": {"before": f"c{number}", "after": f"c{number + 1}"}}
        if number < len(pages) - 1:
            paging["next"] = f"{LISTING}?after=c{number + 1}"
        graph.get(LISTING, json={"data": rows, "paging": paging})


def reconcile(*args: str) -> dict:
    out = StringIO()
    call_command("reconcile_wabas", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_a_lost_partner_added_is_found_on_a_later_page_once(graph, org):
    known = ConnectionFactory(organization=org)
    listing(graph, [waba(known.waba_id)], [waba("102000000000555")])

    report = reconcile()

    assert (report["shared"], report["known"]) == (2, 1)
    assert report["findings"] == [{"kind": "unknown_waba", "wabaId": "102000000000555",
                                   "name": "WABA 555", "organization": ""}]
    # Both pages were read, the second with the first page's cursor.
    assert [c.request.params.get("after") for c in graph.calls] == [None, "c1"]
    orphan = Connection.objects.orphans().get()
    assert (orphan.waba_id, orphan.owner_business_id) == ("102000000000555", "203000000000777")
    assert orphan.owner_business_source == Connection.OwnerSource.GRAPH
    assert AuditLog.objects.filter(action=AuditLog.Action.WABA_FOUND_BY_RECONCILIATION,
                                   target="waba:102000000000555").count() == 1
    active = {a["key"] for a in alerts_evaluate()}
    assert "orphan_waba:102000000000555" in active

    # The next run knows it: nothing new, nothing audited twice.
    listing(graph, [waba(known.waba_id), waba("102000000000555")])
    assert reconcile()["findings"] == []
    assert AuditLog.objects.filter(
        action=AuditLog.Action.WABA_FOUND_BY_RECONCILIATION).count() == 1


def test_a_connected_waba_no_longer_shared_is_disconnected_with_its_reason(graph, org, api):
    gone = ConnectionFactory(organization=org, with_token=True)
    still = ConnectionFactory()
    listing(graph, [waba(still.waba_id)])

    report = reconcile()

    assert report["findings"] == [{"kind": "no_longer_shared", "wabaId": gone.waba_id,
                                   "name": "", "organization": org.name}]
    gone.refresh_from_db()
    assert (gone.status, gone.disconnect_reason) == ("disconnected", "no_longer_shared")
    assert gone.access_token_encrypted == ""  # credentials wiped, as on any disconnection
    assert Connection.objects.get(pk=still.pk).status == "connected"
    assert AuditLog.objects.filter(action=AuditLog.Action.WABA_NO_LONGER_SHARED).count() == 1
    active = {a["key"]: a["message"] for a in alerts_evaluate()}
    assert "não é mais compartilhada" in active[f"waba_no_longer_shared:{gone.waba_id}"]
    body = api.get("/api/v1/whatsapp/connection/status").json()
    assert (body["status"], body["connection"]["disconnectReason"]) == (
        "disconnected", "no_longer_shared")


def test_dry_run_changes_nothing_and_an_empty_listing_disconnects_nobody(graph, org):
    connected = ConnectionFactory(organization=org)
    listing(graph, [waba("102000000000556")])
    report = reconcile("--dry-run")
    assert report["dryRun"] is True and len(report["findings"]) == 2
    assert Connection.objects.get().status == "connected"
    assert not Connection.objects.orphans().exists()

    listing(graph, [])
    report = reconcile()
    assert report["heldBack"] == "empty_listing" and report["findings"] == []
    assert Connection.objects.get(pk=connected.pk).status == "connected"


def test_without_a_partner_business_the_command_says_what_is_missing(settings):
    settings.META_PARTNER_BUSINESS_ID = ""
    with pytest.raises(CommandError, match="META_PARTNER_BUSINESS_ID"):
        call_command("reconcile_wabas")


def test_claim_screen_ranks_organizations_whose_signup_was_pending(org):
    arrived = timezone.now()
    orphan = ConnectionFactory(organization=None, status=Connection.Status.ERROR)
    Connection.objects.filter(pk=orphan.pk).update(created_at=arrived)
    near, far = OrganizationFactory(name="Imobiliária Perto"), OrganizationFactory(
        name="Imobiliária Longe")
    for organization, minutes in ((far, 90), (near, 4)):
        OnboardingFactory(organization=organization, current_step="WABA_SETUP")
        Onboarding.objects.filter(organization=organization).update(
            created_at=arrived - timedelta(minutes=minutes))
    old = OnboardingFactory(organization=OrganizationFactory(name="Imobiliária Antiga"))
    Onboarding.objects.filter(pk=old.pk).update(created_at=arrived - timedelta(days=3))

    client = staff_client("whatsapp.claim_orphan", "whatsapp.view_orphanconnection",
                          "whatsapp.view_connection")
    page = client.get(f"/admin/whatsapp/orphanconnection/{orphan.pk}/claim/").content.decode()
    start = page.index('id="claim-suggestions"')
    suggestions = page[start:page.index("</ol>", start)]
    assert suggestions.index("Imobiliária Perto") < suggestions.index("Imobiliária Longe")
    assert "conexão iniciada 4 minutos antes" in suggestions
    assert "Imobiliária Antiga" not in suggestions

    # One click on the suggestion goes to the confirmation for that organization.
    confirm = client.post(f"/admin/whatsapp/orphanconnection/{orphan.pk}/claim/",
                          {"suggested": str(near.pk), "organization": ""})
    assert "Imobiliária Perto" in confirm.content.decode()
    assert 'name="confirm" value="1"' in confirm.content.decode()


def test_the_tenant_whose_signup_stalled_is_told_support_is_on_it(api, org):
    onboarding = OnboardingFactory(organization=org)
    body = api.get("/api/v1/whatsapp/connection/status").json()
    assert body["supportReviewing"] is False
    orphan = ConnectionFactory(organization=None, status=Connection.Status.ERROR,
                               error_message="orphan: no match")
    assert orphan.created_at >= onboarding.created_at
    assert api.get("/api/v1/whatsapp/connection/status").json()["supportReviewing"] is True
