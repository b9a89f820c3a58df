import pytest
from rest_framework.test import APIClient

from organizations.models import ApiToken
from tests.factories import (
    ConnectionFactory,
    MembershipFactory,
    OnboardingFactory,
    PhoneNumberFactory,
)
from whatsapp.models import Connection

URL = "/api/v1/whatsapp/check-connection"
pytestmark = pytest.mark.django_db


def client_for(membership) -> APIClient:
    _, raw = ApiToken.issue(user=membership.user, organization=membership.organization)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_not_connected(api):
    body = api.get(URL).json()
    assert body["connected"] is False
    assert body["status"] == "not_connected"
    assert body["message"] == "WhatsApp não conectado."


def test_connected_with_number(api, org):
    config = PhoneNumberFactory(connection=ConnectionFactory(organization=org))
    body = api.get(URL).json()
    assert body["connected"] is True
    assert body["status"] == "connected"
    assert body["message"] == "WhatsApp conectado"
    number = body["connection"]["phoneNumbers"][0]
    assert number["displayPhoneNumber"] == config.display_phone_number


def test_response_never_contains_the_token(api, org):
    connection = ConnectionFactory(
        organization=org, with_token=True, token="EAAG-super-secret-token"
    )
    raw = api.get(URL).content.decode()
    assert "EAAG-super-secret-token" not in raw
    assert connection.access_token_encrypted not in raw


def test_invalid_token_asks_to_reconnect(api, org):
    ConnectionFactory(organization=org, token_status=Connection.TokenStatus.INVALID)
    body = api.get(URL).json()
    assert body["status"] == "token_invalid"
    assert body["message"] == "Sessão expirada. Clique para reconectar."


def test_pending_onboarding_reads_as_connecting(api, org):
    OnboardingFactory(organization=org)
    assert api.get(URL).json()["status"] == "connecting"


def test_an_org_cannot_read_another_orgs_status(db):
    a, b = MembershipFactory(), MembershipFactory()
    # Ids longer than a UUID group, so they cannot appear inside org B's tracking code.
    waba = ConnectionFactory(organization=a.organization, waba_id="987650001112223")
    PhoneNumberFactory(connection=waba, display_phone_number="5511911110000")
    OnboardingFactory(organization=b.organization)

    body_a = client_for(a).get(URL).json()
    body_b = client_for(b).get(URL).json()

    assert body_a["connection"]["wabaId"] == "987650001112223"
    assert body_b["connected"] is False
    assert body_b["connection"] is None
    assert "987650001112223" not in str(body_b) and "5511911110000" not in str(body_b)


def test_token_is_bound_to_its_organization_even_if_user_has_two(db):
    a = MembershipFactory()
    other = MembershipFactory(user=a.user)
    ConnectionFactory(organization=other.organization, waba_id="222")
    body = client_for(a).get(URL).json()
    assert body["connection"] is None


def test_unauthenticated_is_401(db):
    response = APIClient().get(URL)
    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized - missing organization"}
