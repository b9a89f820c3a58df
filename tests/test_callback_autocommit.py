"""The callback outside a test transaction, as gunicorn runs it (found by bench/run.py).

Ordinary tests run inside a transaction, which hides a SELECT FOR UPDATE issued in autocommit
mode ("select_for_update cannot be used outside of a transaction" → 500 in production).
"""

import pytest
import responses

from whatsapp.models import Connection, Onboarding

from .factories import OnboardingFactory

pytestmark = pytest.mark.django_db(transaction=True)
G = "https://graph.facebook.com/v25.0"
WABA = "102000000000909"


def test_finish_callback_in_autocommit_binds_the_waba(api, org, admin_user):
    onboarding = OnboardingFactory(organization=org, created_by=admin_user)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{G}/oauth/access_token", json={"access_token": "EAAbusiness"})
        rsps.get(f"{G}/debug_token", json={"data": {
            "is_valid": True, "expires_at": 0,
            "granular_scopes": [{"scope": "whatsapp_business_management", "target_ids": [WABA]}],
        }})
        response = api.post("/api/v1/whatsapp/embedded-signup/callback", {
            "state": str(onboarding.tracking_code), "event": "FINISH", "code": "code-1",
            "wabaId": WABA}, format="json")

    assert response.status_code == 200, response.content
    assert Connection.objects.get(waba_id=WABA).organization == org
    onboarding.refresh_from_db()
    assert onboarding.status == Onboarding.Status.COMPLETED
