"""What conversations cost (issue 16 §4): Meta's per-message pricing stored in columns of our
sends, the monthly usage report (API and admin) and the free-service-tier alert. Every status
arrives through the real webhook URL with a real signature, from ../shared/meta-payloads."""

import copy
import time
from datetime import UTC, datetime

import pytest
from django.core import mail

from ops.alerts import alerts_evaluate
from ops.models import AlertState
from tests.factories import MembershipFactory, OutboundMessageFactory, PhoneNumberFactory
from tests.ingest_support import deliver
from tests.meta import change_value, load
from tests.support import staff_client
from whatsapp.backoffice.support import SUPPORT_GROUP, support_group_ensure
from whatsapp.models import OutboundMessage

pytestmark = pytest.mark.django_db
URL = "/api/v1/whatsapp/usage"
PHONE = "304000000000101"
SERVICE_WAMID = "wamid.GA1PVVQtQS0wMDAxFQIAEhgUT1VULUEtMDAwMQ=="
MARKETING_WAMID = "wamid.GA1PVVQtQS0wMDAyFQIAEhgUT1VULUEtMDAwMg=="
# The fixtures' status timestamps (1790000160 …) fall in this UTC month.
FIXTURE_MONTH = datetime.fromtimestamp(1790000160, tz=UTC).strftime("%Y-%m")


@pytest.fixture
def number(org):
    return PhoneNumberFactory(connection__organization=org, connection__waba_id="102000000000101",
                              phone_number_id=PHONE, display_phone_number="5511940001234")


def send(number, wamid: str) -> OutboundMessage:
    return OutboundMessageFactory(config=number, wamid=wamid,
                                  status=OutboundMessage.Status.ACCEPTED)


def status_now(client, *, wamid: str, status: str = "delivered", pricing: dict | None = None):
    """The delivered fixture, for `wamid`, timed now, with `pricing` if given."""
    body = copy.deepcopy(load("messages_status_delivered.json"))
    item = change_value(body)["statuses"][0]
    item.update(id=wamid, status=status, timestamp=str(int(time.time())))
    if pricing is not None:
        item["pricing"] = pricing
    deliver(client, body)


def test_pricing_is_stored_in_columns_and_a_message_counts_once(client, api, number):
    service, marketing = send(number, SERVICE_WAMID), send(number, MARKETING_WAMID)
    # sent, delivered and read of the service message, each delivered twice (Meta retries),
    # and the marketing template's sent status (older shape, with `conversation`).
    for name in ["messages_status_sent.json", "messages_status_delivered.json",
                 "messages_status_read.json"] * 2 + [
            "messages_status_sent_template_marketing_v23_with_conversation.json"]:
        deliver(client, load(name))

    service.refresh_from_db()
    assert (service.pricing_billable, service.pricing_model, service.pricing_category,
            service.pricing_type) == (False, "PMP", "service", "free_customer_service")
    assert service.priced_at == datetime.fromtimestamp(1790000160, tz=UTC)  # the first priced
    assert service.status == OutboundMessage.Status.READ
    marketing.refresh_from_db()
    assert (marketing.pricing_billable, marketing.pricing_category,
            marketing.pricing_type) == (True, "marketing", "regular")

    response = api.get(URL, {"month": FIXTURE_MONTH})
    assert response.status_code == 200
    body = response.json()
    assert body["month"] == FIXTURE_MONTH
    assert body["totals"] == {"messages": 2, "billable": 1}
    [row] = body["numbers"]
    assert row["phoneNumberId"] == PHONE
    assert row["byCategory"] == {"service": 1, "marketing": 1}
    assert row["byPricingType"] == {"free_customer_service": 1, "regular": 1}
    assert row["byCategoryAndPricingType"] == {"service": {"free_customer_service": 1},
                                               "marketing": {"regular": 1}}
    assert row["freeServiceTier"] == {"size": 1000, "deliveredServiceMessages": 1, "used": 1,
                                      "remaining": 999, "exceeded": False}
    # Another month is empty.
    assert api.get(URL, {"month": "2026-01"}).json()["numbers"] == []


def test_usage_is_scoped_to_the_callers_organization(client, api, number):
    other = PhoneNumberFactory(phone_number_id="304000000000202",
                               connection__waba_id="102000000000202")
    send(other, SERVICE_WAMID)
    body = copy.deepcopy(load("messages_status_delivered.json"))
    change_value(body)["metadata"]["phone_number_id"] = "304000000000202"
    body["entry"][0]["id"] = "102000000000202"  # the other number's own WABA
    deliver(client, body)
    assert OutboundMessage.objects.get(wamid=SERVICE_WAMID).pricing_category == "service"
    assert api.get(URL, {"month": FIXTURE_MONTH}).json() == {
        "month": FIXTURE_MONTH, "numbers": [], "totals": {"messages": 0, "billable": 0}}


@pytest.mark.parametrize("month", ["2026-13", "12-2026", "2026-1", "abc", "1999-01"])
def test_a_bad_month_is_refused_in_portuguese(api, number, month):
    response = api.get(URL, {"month": month})
    assert response.status_code == 400
    assert response.json()["error"] == "Informe o mês no formato AAAA-MM, por exemplo 2026-12."


def test_members_cannot_read_the_usage(client, org):
    member = MembershipFactory(organization=org, role="member")
    client.force_login(member.user)
    assert client.get(URL).status_code == 403


def test_usage_is_in_the_openapi_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/whatsapp/usage"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["month"]


def tier_emails() -> list:
    return [m for m in mail.outbox if "faixa gratuita" in m.subject]


def test_leaving_the_free_tier_is_alerted_once_per_number_and_month(client, api, number,
                                                                     settings):
    settings.WHATSAPP_FREE_SERVICE_TIER = 2
    settings.ADMINS = [("Ops", "ops@example.com")]
    free = {"billable": False, "pricing_model": "PMP", "type": "free_customer_service",
            "category": "service"}
    for n in range(2):
        send(number, f"wamid.free{n}")
        status_now(client, wamid=f"wamid.free{n}", pricing=free)
    alerts_evaluate()
    assert tier_emails() == []  # 2 of 2: still inside the tier

    send(number, "wamid.third")
    status_now(client, wamid="wamid.third", pricing=free)
    status_now(client, wamid="wamid.third", pricing=free)  # a duplicate status counts once
    alerts_evaluate()
    alerts_evaluate()
    [email] = tier_emails()
    assert "5511940001234" in email.subject
    month = datetime.now(UTC).strftime("%Y-%m")
    assert AlertState.objects.get(key=f"free_tier_exceeded:{PHONE}:{month}").active
    row = api.get(URL).json()["numbers"][0]
    assert row["freeServiceTier"] == {"size": 2, "deliveredServiceMessages": 3, "used": 2,
                                      "remaining": 0, "exceeded": True}


def test_metas_regular_price_on_a_service_message_marks_the_tier_left(client, api, number):
    """A number shared with another partner shares Meta's tier: Meta's word counts too."""
    send(number, "wamid.billed")
    status_now(client, wamid="wamid.billed", pricing={
        "billable": True, "pricing_model": "PMP", "type": "regular", "category": "service"})
    alerts_evaluate()
    assert AlertState.objects.filter(key__startswith=f"free_tier_exceeded:{PHONE}:",
                                     active=True).exists()
    assert api.get(URL).json()["numbers"][0]["freeServiceTier"]["exceeded"] is True


def test_support_reads_the_usage_per_number_in_the_admin(client, number):
    send(number, SERVICE_WAMID)
    deliver(client, load("messages_status_delivered.json"))
    support_group_ensure()
    support = staff_client(group=SUPPORT_GROUP)
    page = support.get("/admin/whatsapp/numberusage/", {"month": FIXTURE_MONTH})
    assert page.status_code == 200
    text = page.content.decode()
    assert "Uso por número" in text and "5511940001234" in text
    assert "1 de 1.000" in text  # the free service tier used
