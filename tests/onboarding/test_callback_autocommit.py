"""The callback outside a test transaction, as gunicorn runs it (found by bench/run.py).

Ordinary tests run inside a transaction, which hides a SELECT FOR UPDATE issued in autocommit
mode ("select_for_update cannot be used outside of a transaction" → 500 in production).
"""

import pytest

from tests.factories import OnboardingFactory
from tests.meta import graph_signup
from whatsapp.models import Connection, Onboarding

pytestmark = pytest.mark.django_db(transaction=True)
WABA = "102000000000909"


def test_finish_callback_in_autocommit_binds_the_waba(api, org, admin_user, graph):
    onboarding = OnboardingFactory(organization=org, created_by=admin_user)
    graph_signup(graph, waba=WABA)
    response = api.post("/api/v1/whatsapp/embedded-signup/callback", {
        "state": str(onboarding.tracking_code), "event": "FINISH", "code": "code-1",
        "wabaId": WABA}, format="json")

    assert response.status_code == 200, response.content
    assert Connection.objects.get(waba_id=WABA).organization == org
    onboarding.refresh_from_db()
    assert onboarding.status == Onboarding.Status.COMPLETED
