"""Pipelines that finish (issue 20 §2): retries on a schedule the tenant can see, then `error`
with a code, an alert and "Tentar novamente"; a sweep that resumes what nobody is running; a
lock that a dead worker cannot hold longer than the stall time; syncs whose outcomes are each
visible."""

from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from audit.models import AuditLog
from ops.alerts import alerts_evaluate
from organizations.models import ApiToken, Membership
from tests.factories import ConnectionFactory, MembershipFactory, PhoneNumberFactory
from tests.meta import GRAPH
from whatsapp.models import AnalyticsEvent, Connection, PhoneNumber
from whatsapp.onboarding.pipeline import lock_seconds, pipeline_run
from whatsapp.onboarding.retries import pipelines_sweep

pytestmark = pytest.mark.django_db

STATUS = "/api/v1/whatsapp/connection/status"
RETRY = "/api/v1/whatsapp/connection/retry"


@pytest.fixture
def connecting(org):
    """A tenant's connection whose pipeline has work left (token stored, not subscribed)."""
    return ConnectionFactory(organization=org, status=Connection.Status.CONNECTING,
                             with_token=True, connected_at=timezone.now())


def meta_down(graph, connection) -> None:
    graph.post(f"{GRAPH}/{connection.waba_id}/subscribed_apps", status=503,
               json={"error": {"message": "Service unavailable", "code": 2}})


def meta_up(graph, connection, *, coexistence=False) -> None:
    graph.upsert(responses.POST, f"{GRAPH}/{connection.waba_id}/subscribed_apps",
                 json={"success": True})
    graph.get(f"{GRAPH}/{connection.waba_id}/phone_numbers", json={"data": [{
        "id": "304000000000901", "display_phone_number": "5511940009999",
        "verified_name": "Imobiliária Sol", "quality_rating": "GREEN",
        "is_on_biz_app": coexistence}]})
    graph.post(f"{GRAPH}/304000000000901/register", json={"success": True})


def test_transient_failures_are_retried_on_schedule_then_end_in_error_with_code(
        api, connecting, graph, settings):
    settings.WHATSAPP_PIPELINE_RETRY_DELAYS = [30, 60]
    meta_down(graph, connecting)

    assert pipeline_run(connecting.pk) == "retry"
    # The tenant sees that the product is retrying, which attempt comes next and when.
    body = api.get(STATUS).json()
    assert body["status"] == "connecting"
    assert (body["retry"]["attempt"], body["retry"]["maxAttempts"]) == (2, 3)
    next_at = Connection.objects.get().pipeline_next_attempt_at
    assert 25 <= (next_at - timezone.now()).total_seconds() <= 31

    # An automatic run before its time does nothing (a sweep racing Celery's countdown).
    assert pipeline_run(connecting.pk, scheduled=True) == "busy"
    Connection.objects.update(pipeline_next_attempt_at=timezone.now())
    assert pipeline_run(connecting.pk, scheduled=True) == "retry"
    Connection.objects.update(pipeline_next_attempt_at=timezone.now())
    assert pipeline_run(connecting.pk, scheduled=True) == "error"

    connection = Connection.objects.get()
    assert (connection.status, connection.error_code) == ("error", "meta_unavailable")
    assert connection.pipeline_next_attempt_at is None
    body = api.get(STATUS).json()
    assert (body["status"], body["errorCode"]) == ("error", "meta_unavailable")
    assert "Código para o suporte: meta_unavailable" in body["errorMessage"]
    assert body["connection"]["errorCode"] == "meta_unavailable"
    assert body["retry"] is None
    assert AuditLog.objects.filter(action=AuditLog.Action.PIPELINE_FAILED).count() == 1
    failed = AnalyticsEvent.objects.get(name=AnalyticsEvent.Name.SIGNUP_FAILED)
    assert failed.properties["errorCode"] == "meta_unavailable"
    active = {a["key"]: a["message"] for a in alerts_evaluate()}
    assert "falhou: meta_unavailable" in active[f"pipeline_error:{connection.waba_id}"]


def test_the_tenant_retries_a_failed_connection_and_it_connects(
        api, connecting, graph, broker, django_capture_on_commit_callbacks, settings):
    settings.WHATSAPP_PIPELINE_RETRY_DELAYS = []
    meta_down(graph, connecting)
    assert pipeline_run(connecting.pk) == "error"

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(RETRY, {}, format="json")
    assert response.status_code == 202
    assert response.json()["status"] == "connecting"
    assert broker.of("run_connection_pipeline") == [(str(connecting.pk),)]
    retried = AuditLog.objects.get(action=AuditLog.Action.PIPELINE_RETRIED)
    assert retried.metadata["error_code"] == "meta_unavailable"

    meta_up(graph, connecting)
    assert pipeline_run(connecting.pk) == "done"
    body = api.get(STATUS).json()
    assert (body["status"], body["errorCode"], body["errorMessage"]) == ("connected", "", "")


def test_retry_is_for_admins_of_the_organization_only(api, connecting, org, broker):
    Connection.objects.update(status=Connection.Status.ERROR, error_code="meta_refused")
    other = ConnectionFactory(status=Connection.Status.ERROR)

    # Another organization's connection: 404 in pt-BR, and it is left alone.
    response = api.post(RETRY, {"connectionId": str(other.pk)}, format="json")
    assert response.status_code == 404
    assert response.json()["error"] == "Não há conexão do WhatsApp para tentar novamente."
    assert Connection.objects.get(pk=other.pk).status == "error"
    # A member (not an admin) may see the error but not act on it.
    member = MembershipFactory(organization=org, role=Membership.Role.MEMBER)
    _, raw = ApiToken.issue(user=member.user, organization=org)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get(STATUS).json()["errorCode"] == "meta_refused"
    assert api.post(RETRY, {}, format="json").status_code == 403
    assert Connection.objects.get(pk=connecting.pk).status == "error"
    assert broker.of("run_connection_pipeline") == []


def test_sweep_resumes_what_nobody_runs_and_leaves_what_is_scheduled_or_held(org, broker,
                                                                             settings):
    settings.WHATSAPP_PIPELINE_STALL_SECONDS = 300
    old = timezone.now() - timedelta(seconds=400)
    lost = ConnectionFactory(organization=org, status="connecting")  # enqueue lost
    scheduled = ConnectionFactory(organization=org, status="connecting",
                                  pipeline_next_attempt_at=timezone.now() + timedelta(minutes=5))
    overdue = ConnectionFactory(organization=org, status="connecting",
                                pipeline_next_attempt_at=timezone.now() - timedelta(seconds=5))
    held = ConnectionFactory(organization=org, status="connecting",
                             pipeline_locked_until=timezone.now() + timedelta(seconds=30))
    dead = ConnectionFactory(organization=org, status="connecting",
                             pipeline_locked_until=timezone.now() - timedelta(seconds=1))
    recent = ConnectionFactory(organization=org, status="connecting")
    ConnectionFactory(organization=None, status="connecting")  # an orphan: support's
    Connection.objects.exclude(pk=recent.pk).update(updated_at=old)

    resumed = pipelines_sweep()

    assert sorted(resumed) == sorted(str(c.pk) for c in (lost, overdue, dead))
    assert sorted(broker.of("run_connection_pipeline")) == sorted(
        (str(c.pk), True) for c in (lost, overdue, dead))
    assert str(scheduled.pk) not in resumed and str(held.pk) not in resumed


def test_a_dead_workers_lock_never_outlasts_the_stall_time(connecting, graph, settings):
    settings.WHATSAPP_PIPELINE_STALL_SECONDS = 120
    settings.WHATSAPP_PIPELINE_LOCK_SECONDS = 900
    seen = []

    def while_meta_works(request):
        # What a worker killed right now would leave behind: the lock's end.
        seen.append(Connection.objects.get().pipeline_locked_until - timezone.now())
        return 503, {}, '{"error": {"message": "Service unavailable", "code": 2}}'

    graph.add_callback(responses.POST, f"{GRAPH}/{connecting.waba_id}/subscribed_apps",
                       callback=while_meta_works)
    pipeline_run(connecting.pk)
    assert lock_seconds() == 120
    assert len(seen) == 1 and timedelta(seconds=100) < seen[0] <= timedelta(seconds=120)
    assert Connection.objects.get().pipeline_locked_until is None  # released when done


def test_a_failed_contacts_sync_does_not_skip_the_history_and_each_outcome_shows(
        api, connecting, graph):
    meta_up(graph, connecting, coexistence=True)
    phone = "304000000000901"
    graph.post(f"{GRAPH}/{phone}/smb_app_data", status=400, json={"error": {
        "message": "(#100) Invalid parameter", "code": 100}})
    graph.post(f"{GRAPH}/{phone}/smb_app_data", json={"request_id": "req-history"})

    assert pipeline_run(connecting.pk) == "done"

    number = PhoneNumber.objects.get()
    assert number.contacts_sync_status == PhoneNumber.SyncStatus.FAILED
    assert number.history_sync_status == PhoneNumber.SyncStatus.REQUESTED
    assert number.sync_error.startswith("contacts: ")
    card = api.get(STATUS).json()["connections"][0]["phoneNumbers"][0]
    assert card["sync"] == {"contacts": {"state": "failed"},
                            "history": {"state": "requested", "percent": 0}}
    active = {a["key"] for a in alerts_evaluate()}
    assert f"sync_failed:{phone}" in active


def test_several_numbers_are_listed_and_disconnected_one_at_a_time(api, org, graph):
    first = ConnectionFactory(organization=org, created_at=timezone.now() - timedelta(days=2))
    PhoneNumberFactory(connection=first, display_phone_number="5511940001111")
    second = ConnectionFactory(organization=org)
    PhoneNumberFactory(connection=second, display_phone_number="5511940002222")
    ConnectionFactory(organization=org, status=Connection.Status.DISCONNECTED)
    foreign = ConnectionFactory()

    body = api.get(STATUS).json()
    assert [c["id"] for c in body["connections"]] == [str(second.pk), str(first.pk)]
    assert body["connection"]["id"] == str(second.pk)  # the newest live one, as before

    # Another organization's connection: 404, nothing disconnected.
    response = api.post("/api/v1/whatsapp/connection/disconnect",
                        {"connectionId": str(foreign.pk)}, format="json")
    assert response.status_code == 404
    response = api.post("/api/v1/whatsapp/connection/disconnect",
                        {"connectionId": str(first.pk)}, format="json")
    assert response.status_code == 200 and response.json()["connectionId"] == str(first.pk)
    statuses = dict(Connection.objects.values_list("pk", "status"))
    assert (statuses[first.pk], statuses[second.pk], statuses[foreign.pk]) == (
        "disconnected", "connected", "connected")
    body = api.get(STATUS).json()
    assert body["status"] == "connected"
    assert [c["id"] for c in body["connections"]] == [str(second.pk)]
