import json
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import cache
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from organizations.models import ApiToken
from tests.factories import UserFactory
from whatsapp.models import Onboarding

URL = "/api/v1/whatsapp/onboarding-url"
pytestmark = pytest.mark.django_db


def test_url_has_the_exact_shape_of_seed_000(api, org, settings):
    settings.META_EMBEDDED_SIGNUP_VERSION = "v3"  # seed 000 §6.1's extras, for whoever needs them
    response = api.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"url", "trackingCode", "expiresAt"}
    code = uuid.UUID(body["trackingCode"])
    assert code.version == 4
    # Seed 000 §6.2: app_id, config_id, then extras = encodeURIComponent(JSON.stringify(extras)).
    assert body["url"] == (
        "https://business.facebook.com/messaging/whatsapp/onboard/"
        f"?app_id={settings.META_APP_ID}&config_id={settings.META_CONFIG_ID}"
        "&extras=%7B%22featureType%22%3A%22whatsapp_business_app_onboarding%22%2C"
        "%22sessionInfoVersion%22%3A%223%22%2C%22version%22%3A%22v3%22%2C"
        f"%22sessionInfo%22%3A%7B%22trackingCode%22%3A%22{code}%22%7D%7D"
    )
    extras = json.loads(parse_qs(urlsplit(body["url"]).query)["extras"][0])
    assert extras == {
        "featureType": "whatsapp_business_app_onboarding",
        "sessionInfoVersion": "3",
        "version": "v3",
        "sessionInfo": {"trackingCode": str(code)},
    }
    expires = parse_datetime(body["expiresAt"])
    assert abs(expires - (timezone.now() + timedelta(seconds=86400))) < timedelta(seconds=10)


def test_tracking_code_is_stored_in_db_and_in_redis_with_ttl(api, org):
    body = api.get(URL, {"redirectPath": "/my-redirect"}).json()

    onboarding = Onboarding.objects.get(tracking_code=body["trackingCode"])
    assert onboarding.organization == org
    assert onboarding.status == Onboarding.Status.PENDING
    assert onboarding.redirect_path == "/my-redirect"
    key = f"whatsapp:onboarding:{body['trackingCode']}"
    cached = cache.get(key)
    assert cached["organizationId"] == str(org.pk)
    assert cached["redirectPath"] == "/my-redirect"
    assert isinstance(cached["createdAt"], int)
    assert 86300 < cache.ttl(key) <= 86400


def test_each_call_gives_a_new_tracking_code(api):
    first = api.get(URL).json()["trackingCode"]
    second = api.get(URL).json()["trackingCode"]
    assert first != second
    assert Onboarding.objects.count() == 2


def test_default_redirect_path(api):
    code = api.get(URL).json()["trackingCode"]
    onboarding = Onboarding.objects.get(tracking_code=code)
    assert onboarding.redirect_path == "/dashboard/settings/whatsapp"


@pytest.mark.parametrize("headers", [{}, {"HTTP_AUTHORIZATION": "Bearer not-a-token"},
                                     {"HTTP_AUTHORIZATION": "Basic abc"}])
def test_unauthenticated_gets_the_seed_401_body(db, headers):
    response = APIClient().get(URL, **headers)
    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized - missing organization"}
    assert not Onboarding.objects.exists()


def test_user_without_organization_gets_401(db):
    client = APIClient()
    client.force_authenticate(UserFactory())
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized - missing organization"}


def test_revoked_token_is_refused(membership):
    token, raw = ApiToken.issue(user=membership.user, organization=membership.organization)
    token.revoke()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get(URL).status_code == 401


@pytest.mark.parametrize("path", [
    "//evil.com", "https://evil.com/x", "http:/evil.com", "javascript:alert(1)", "evil.com",
    "/\\evil.com", "\\\\evil.com", "/ok\nLocation: x",
])
def test_redirect_path_must_be_a_same_site_relative_path(api, path):
    response = api.get(URL, {"redirectPath": path})
    assert response.status_code == 400
    assert "redirectPath" in response.json()["error"]
    assert not Onboarding.objects.exists()


def test_session_login_also_works(admin_user, org, client):
    client.force_login(admin_user)
    assert client.get(URL).status_code == 200


def test_redis_down_onboarding_url_still_works(api, org, redis_down):
    response = api.get(URL)
    assert response.status_code == 200
    assert Onboarding.objects.filter(tracking_code=response.json()["trackingCode"]).exists()
