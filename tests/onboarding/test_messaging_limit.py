"""Messaging limits (issue 16 §3): the business portfolio's limit read from Graph under the field
the pinned version knows, kept current by phone_number_quality_update through the real webhook
URL, shared by the portfolio's numbers, and shown to the tenant and to support."""

import copy
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.utils import timezone

from tests.factories import ConnectionFactory, PhoneNumberFactory
from tests.ingest_support import deliver, ts
from tests.meta import GRAPH, change_value, graph_signup, load
from tests.onboarding.test_pipeline import PHONE, WABA, finish, number
from tests.support import staff_client
from whatsapp.models import PhoneNumber
from whatsapp.onboarding.pipeline import pipeline_run
from whatsapp.onboarding.token_health import tokens_check

pytestmark = pytest.mark.django_db
LIMIT, OLD_LIMIT = "whatsapp_business_manager_messaging_limit", "messaging_limit_tier"


@pytest.fixture
def graph(graph):
    graph_signup(graph, waba=WABA)
    return graph


def asked_fields(graph) -> set[str]:
    (call,) = [c for c in graph.calls if "/phone_numbers" in c.request.url]
    return set(parse_qs(urlsplit(call.request.url).query)["fields"][0].split(","))


def test_pipeline_reads_the_portfolio_limit_under_the_new_field(api, onboarding, graph):
    graph.get(f"{GRAPH}/{WABA}/phone_numbers",
              json={"data": [{**number(PHONE), LIMIT: "TIER_2K"}]})
    graph.post(f"{GRAPH}/{PHONE}/register", json={"success": True})
    connection_id = finish(api, onboarding).json()["connection_id"]
    assert pipeline_run(connection_id) == "done"

    assert LIMIT in asked_fields(graph) and OLD_LIMIT not in asked_fields(graph)
    config = PhoneNumber.objects.get()
    assert config.messaging_limit == "TIER_2K" and config.messaging_limit_at is not None
    # The tenant sees it with the number.
    (shown,) = api.get("/api/v1/whatsapp/check-connection").json()["connection"]["phoneNumbers"]
    assert shown["messagingLimit"] == "TIER_2K"


def test_old_graph_versions_are_asked_the_old_field(api, onboarding, settings, graph):
    settings.META_GRAPH_API_VERSION = "v23.0"
    old_graph = GRAPH.replace("v25.0", "v23.0")
    graph.get(f"{old_graph}/oauth/access_token", json={"access_token": "EAAbusiness"})
    graph.get(f"{old_graph}/debug_token", json={"data": {
        "is_valid": True, "type": "SYSTEM_USER", "expires_at": 0, "granular_scopes": [
            {"scope": "whatsapp_business_management", "target_ids": [WABA]},
            {"scope": "whatsapp_business_messaging", "target_ids": [WABA]}]}})
    graph.post(f"{old_graph}/{WABA}/subscribed_apps", json={"success": True})
    graph.get(f"{old_graph}/{WABA}/phone_numbers",
              json={"data": [{**number(PHONE), OLD_LIMIT: "TIER_250"}]})
    graph.post(f"{old_graph}/{PHONE}/register", json={"success": True})
    connection_id = finish(api, onboarding).json()["connection_id"]
    assert pipeline_run(connection_id) == "done"

    assert OLD_LIMIT in asked_fields(graph) and LIMIT not in asked_fields(graph)
    assert PhoneNumber.objects.get().messaging_limit == "TIER_250"


def quality_update(limit: str, time: int) -> dict:
    body = copy.deepcopy(load("phone_number_quality_update_throughput_upgrade.json"))
    body["entry"][0]["time"] = time
    change_value(body)["max_daily_conversations_per_business"] = limit
    return body


def test_quality_update_sets_the_limit_of_every_number_of_the_portfolio(client, org):
    a = PhoneNumberFactory(connection__organization=org, connection__waba_id=WABA,
                           connection__owner_business_id="203000000000101",
                           phone_number_id=PHONE, display_phone_number="5511940001234")
    # Another WABA of the same portfolio and tenant shares the limit.
    sibling = PhoneNumberFactory(connection__organization=org,
                                 connection__owner_business_id="203000000000101",
                                 display_phone_number="5511940009999")
    # Another tenant claiming the same portfolio id is never touched.
    stranger = PhoneNumberFactory(connection__owner_business_id="203000000000101")

    deliver(client, load("phone_number_quality_update_throughput_upgrade.json"))
    for config in (a, sibling, stranger):
        config.refresh_from_db()
    assert a.messaging_limit == sibling.messaging_limit == "TIER_UNLIMITED"
    assert a.messaging_limit_at == ts(1790007000) and a.quality_event == "THROUGHPUT_UPGRADE"
    assert stranger.messaging_limit == ""

    # An older delivery arriving late does not undo the newer limit.
    deliver(client, quality_update("TIER_10K", 1790000000))
    a.refresh_from_db()
    assert a.messaging_limit == "TIER_UNLIMITED"
    deliver(client, quality_update("TIER_100K", 1790009000))
    sibling.refresh_from_db()
    assert sibling.messaging_limit == "TIER_100K"


def test_token_health_refreshes_the_limit_and_meta_trouble_changes_nothing(graph, settings):
    config = PhoneNumberFactory(connection__with_token=True, connection__waba_id=WABA,
                                phone_number_id=PHONE, messaging_limit="TIER_250",
                                quality_rating="GREEN")
    graph.get(f"{GRAPH}/debug_token", json={"data": {"is_valid": True, "expires_at": 0}})
    graph.get(f"{GRAPH}/{WABA}/phone_numbers", json={"data": [
        {"id": PHONE, "quality_rating": "YELLOW", LIMIT: "TIER_10K"}]})
    assert [c.result for c in tokens_check()] == ["valid"]
    config.refresh_from_db()
    assert (config.messaging_limit, config.quality_rating) == ("TIER_10K", "YELLOW")

    graph.replace("GET", f"{GRAPH}/{WABA}/phone_numbers", body=requests.ConnectionError())
    assert [c.result for c in tokens_check()] == ["valid"]  # the token is still fine
    config.refresh_from_db()
    assert config.messaging_limit == "TIER_10K"


def test_support_sees_the_limit_in_portuguese(org):
    config = PhoneNumberFactory(connection=ConnectionFactory(organization=org),
                                messaging_limit="TIER_2K", messaging_limit_at=timezone.now())
    support = staff_client(group="Suporte")
    listing = support.get("/admin/whatsapp/phonenumber/").content.decode()
    assert "2.000 conversas por dia" in listing and "TIER_2K" not in listing
    detail = support.get(f"/admin/whatsapp/phonenumber/{config.pk}/change/").content.decode()
    assert "Limite de mensagens" in detail and "2.000 conversas por dia" in detail
    inline = support.get(f"/admin/whatsapp/connection/{config.connection_id}/change/")
    assert "2.000 conversas por dia" in inline.content.decode()


def test_settings_page_labels_the_limit_for_the_connected_card(client, admin_user, org):
    PhoneNumberFactory(connection__organization=org, messaging_limit="TIER_250")
    client.force_login(admin_user)
    page = client.get("/dashboard/settings/whatsapp").content.decode()
    assert "Limite de mensagens: %(limit)s" in page
    assert "250 conversas por dia" in page
