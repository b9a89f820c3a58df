"""Issue 14 §1: a tenant cannot take over another tenant's future WABAs through the browser's
`businessId`. End to end through the Meta sandbox (popup signups, the hosted link, signed
webhooks delivered late and retried) with a real Celery worker running the pipeline; the
product is driven over HTTP with each tenant's own Bearer token, as an attacker would."""

import json
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from organizations.models import ApiToken
from tests.factories import MembershipFactory
from tests.support import wait_for
from whatsapp.models import Connection, PhoneNumber, WebhookLog

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

CALLBACK = "/api/v1/whatsapp/embedded-signup/callback"


class Tenant:
    """One imobiliária's admin talking to the product's API with its own Bearer token."""

    def __init__(self, base: str, name: str):
        membership = MembershipFactory(organization__name=name)
        self.organization = membership.organization
        _, raw = ApiToken.issue(user=membership.user, organization=self.organization)
        self.base = base
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {raw}"

    def get(self, path: str) -> requests.Response:
        return self.http.get(f"{self.base}/api/v1/whatsapp/{path}", timeout=30)

    def onboarding_url(self) -> str:
        response = self.get("onboarding-url")
        assert response.status_code == 200, response.text
        return response.json()["url"]

    def tracking_code(self) -> str:
        return self.get("onboarding-url").json()["trackingCode"]

    def callback(self, **body) -> requests.Response:
        return self.http.post(f"{self.base}{CALLBACK}", json=body, timeout=30)

    def numbers(self) -> set[str]:
        response = self.get("phone-numbers")
        assert response.status_code == 200, response.text
        return {n["phoneNumberId"] for n in response.json()["phoneNumbers"]}


def processed(waba_id: str) -> bool:
    """PARTNER_ADDED of this WABA was stored and processed by the worker."""
    return any(waba_id in bytes(log.raw_body).decode() for log in
               WebhookLog.objects.filter(status=WebhookLog.Status.PROCESSED))


def popup_signup(sandbox, tenant: Tenant, *, business_name: str, business_id: str = "") -> dict:
    """The tenant finishes Meta's popup: a code for its own business's WABA."""
    return sandbox.signup("cloud_one", flow="popup", business_name=business_name,
                          business_id=business_id)


def test_browser_business_id_cannot_take_over_the_victims_next_waba(live_server, sandbox,
                                                                    worker):
    victim = Tenant(live_server.url, "Imobiliária Vítima")
    attacker = Tenant(live_server.url, "Imobiliária Atacante")

    # The victim connected WhatsApp normally: its business is known to the product.
    state = victim.tracking_code()
    first = popup_signup(sandbox, victim, business_name="Vítima Ltda")
    response = victim.callback(state=state, event=first["event"], code=first["code"],
                               wabaId=first["waba_id"],
                               phoneNumberId=first["phone_number_ids"][0],
                               businessId=first["business_id"])
    assert response.status_code == 200, response.text
    victim_business = first["business_id"]
    wait_for(lambda: processed(first["waba_id"]), timeout=60,
             message="the victim's PARTNER_ADDED to be processed")

    # The attacker signs up its own business, but Meta's webhooks are late (they fail and are
    # retried), so its callback arrives first, relaying its real code and WABA with the
    # victim's business id as `businessId`.
    sandbox.switches(webhook_url=sandbox.base + "/nowhere", retry_delays=[2, 2, 3, 5, 8, 13])
    state = attacker.tracking_code()
    mine = popup_signup(sandbox, attacker, business_name="Atacante Ltda")
    assert mine["business_id"] != victim_business
    response = attacker.callback(state=state, event=mine["event"], code=mine["code"],
                                 wabaId=mine["waba_id"], businessId=victim_business)
    assert response.status_code == 200, response.text
    # Before any webhook, the owner is what Graph says with the attacker's proven token.
    bound = Connection.objects.active().get(waba_id=mine["waba_id"])
    assert (bound.owner_business_id, bound.owner_business_source) == (mine["business_id"],
                                                                     "graph")
    sandbox.switches(webhook_url=sandbox.webhook_url)  # the retries now reach us
    wait_for(lambda: processed(mine["waba_id"]), timeout=60,
             message="the attacker's late PARTNER_ADDED to be processed")
    wait_for(lambda: Connection.objects.filter(
        waba_id=mine["waba_id"], status=Connection.Status.CONNECTED).exists(), timeout=60,
        message="the attacker's own connection to finish its pipeline")

    # Later the victim connects a new WABA of its business through the hosted link; Meta does
    # not echo the tracking code, so only the owner business can correlate it.
    link = victim.onboarding_url()
    extras = parse_qs(urlparse(link).query)["extras"][0]
    second = sandbox.signup("cloud_one", flow="hosted", business_id=victim_business,
                            extras=json.loads(extras))
    assert second["business_id"] == victim_business
    wait_for(lambda: processed(second["waba_id"]), timeout=60,
             message="the victim's hosted PARTNER_ADDED to be processed")

    taken = Connection.objects.active().get(waba_id=second["waba_id"])
    assert taken.organization_id != attacker.organization.pk, (
        f"the victim's new WABA was attributed to the attacker ({taken.attributed_by})")
    assert taken.organization_id in (victim.organization.pk, None)
    if taken.organization_id == victim.organization.pk:
        wait_for(lambda: Connection.objects.filter(
            pk=taken.pk, status=Connection.Status.CONNECTED).exists(), timeout=60,
            message="the victim's new connection to finish its pipeline")
        assert set(second["phone_number_ids"]) <= victim.numbers()
    else:
        assert taken.is_orphan
    assert not set(second["phone_number_ids"]) & attacker.numbers()
    assert not PhoneNumber.objects.filter(phone_number_id__in=second["phone_number_ids"],
                                          organization=attacker.organization).exists()
    # What the attacker's own connection says about its owner came from Meta, not the browser.
    own = Connection.objects.active().get(waba_id=mine["waba_id"])
    assert own.owner_business_id == mine["business_id"]
