"""Token health (debug_token) and what the tenant sees when Meta revokes a token."""

import json
from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from audit.models import AuditLog
from tests.factories import ConnectionFactory
from tests.ingest_support import run_command
from tests.meta import GRAPH
from whatsapp.onboarding.token_health import tokens_check

pytestmark = pytest.mark.django_db


# --- token health ---------------------------------------------------------------------------
@responses.activate
def test_token_health_valid_invalid_never_expiring_and_transient():
    valid, never, invalid, flaky, revoked = (ConnectionFactory(with_token=True) for _ in range(5))
    in_20_days = int((timezone.now() + timedelta(days=20)).timestamp())
    answers = {valid.waba_id: {"data": {"is_valid": True, "expires_at": in_20_days}},
               never.waba_id: {"data": {"is_valid": True, "expires_at": 0}},
               invalid.waba_id: {"data": {"is_valid": False, "expires_at": 0}}}
    order = [valid, never, invalid, flaky, revoked]

    def reply(request):
        connection = order.pop(0)
        if connection is flaky:
            return 503, {}, json.dumps({"error": {"code": 2, "message": "Service unavailable"}})
        if connection is revoked:
            return 400, {}, json.dumps({"error": {"code": 190, "message": "expired"}})
        return 200, {}, json.dumps(answers[connection.waba_id])

    responses.add_callback(responses.GET, f"{GRAPH}/debug_token", callback=reply)
    results = {c.waba_id: c.result for c in tokens_check()}
    assert results == {valid.waba_id: "valid", never.waba_id: "valid",
                       invalid.waba_id: "invalid", flaky.waba_id: "error",
                       revoked.waba_id: "invalid"}
    for c in (valid, never, invalid, flaky, revoked):
        c.refresh_from_db()
    assert valid.token_expires_at and abs(valid.token_expires_at.timestamp() - in_20_days) < 1
    assert never.token_expires_at is None and never.token_checked_at
    assert flaky.token_status == "valid"  # transient errors never log a tenant out
    assert invalid.token_status == revoked.token_status == "invalid"
    # The app token (not the tenant's) asks; the tenant token never appears in a URL we log.
    assert "access_token=" in responses.calls[0].request.url
    assert AuditLog.objects.filter(action="TOKEN_INVALIDATED").count() == 2


@responses.activate
def test_token_invalidation_is_audited_once_and_the_tenant_sees_reconnect(api, org):
    connection = ConnectionFactory(with_token=True, organization=org)
    responses.get(f"{GRAPH}/debug_token", json={"data": {"is_valid": False}})
    run_command("token_health", "--org", org.slug)
    run_command("token_health")
    assert AuditLog.objects.filter(action="TOKEN_INVALIDATED").count() == 1
    body = api.get("/api/v1/whatsapp/check-connection").json()
    assert body["status"] == "token_invalid"
    connection.refresh_from_db()
    assert connection.token_status == "invalid"
