"""Issue 14 §7: the 429 answer is in pt-BR."""

import pytest

pytestmark = pytest.mark.django_db


def test_too_many_requests_reads_in_ptbr(api, settings):
    settings.API_RATE_LIMITS = {"default": 100, "onboarding-url": 1}
    assert api.get("/api/v1/whatsapp/onboarding-url").status_code == 200
    response = api.get("/api/v1/whatsapp/onboarding-url")
    assert response.status_code == 429
    wait = int(response["Retry-After"])
    unit = "segundo" if wait == 1 else "segundos"
    assert response.json() == {"error": f"Muitas requisições. Tente novamente em {wait} {unit}."}
