"""META_EMBEDDED_SIGNUP_VERSION decides the `extras` of both launchers: the hosted link the
API builds and the popup's FB.login options the settings page hands its script."""

import json
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

pytestmark = pytest.mark.django_db

PAGE = "/dashboard/settings/whatsapp"
URL = "/api/v1/whatsapp/onboarding-url"
COEXISTENCE = "whatsapp_business_app_onboarding"


def hosted_extras(api) -> tuple[dict, str]:
    body = api.get(URL).json()
    query = parse_qs(urlsplit(body["url"]).query)
    return json.loads(query["extras"][0]), body["trackingCode"]


def popup_extras(client, user) -> dict:
    client.force_login(user)
    html = client.get(PAGE).content.decode()
    config = re.search(r'<script id="wa-config" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(config.group(1))["extras"]


def test_v4_is_the_default_for_both_launchers(api, client, admin_user, settings):
    assert settings.META_EMBEDDED_SIGNUP_VERSION == "v4"
    hosted, code = hosted_extras(api)
    # v4: Meta's `{setup: {}}`, coexistence still chosen by featureType, no v2-era
    # sessionInfoVersion; the tracking code still travels in sessionInfo.
    assert hosted == {"setup": {}, "featureType": COEXISTENCE, "version": "v4",
                      "sessionInfo": {"trackingCode": code}}
    uuid.UUID(code)
    # The popup gets the same object; its script adds the onboarding's tracking code.
    assert popup_extras(client, admin_user) == {"setup": {}, "featureType": COEXISTENCE,
                                                "version": "v4"}


def test_v3_reproduces_seed_000_for_both_launchers(api, client, admin_user, settings):
    settings.META_EMBEDDED_SIGNUP_VERSION = "v3"
    hosted, code = hosted_extras(api)
    assert hosted == {"featureType": COEXISTENCE, "sessionInfoVersion": "3", "version": "v3",
                      "sessionInfo": {"trackingCode": code}}
    assert list(hosted) == ["featureType", "sessionInfoVersion", "version", "sessionInfo"]
    assert popup_extras(client, admin_user) == {"featureType": COEXISTENCE,
                                                "sessionInfoVersion": "3", "version": "v3"}

