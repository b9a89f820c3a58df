"""Support's actions through the admin URLs, as a *suporte* user (issue 18 item 3): cancel a
pending onboarding, resume a stalled pipeline, request a failed coexistence sync again. Each
changes the right rows, is audited with the staff user, and refuses in pt-BR otherwise."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditLog
from tests.factories import (
    ConnectionFactory,
    OnboardingFactory,
    PhoneNumberFactory,
    UserFactory,
)
from whatsapp.models import Connection, Onboarding, PhoneNumber
from whatsapp.onboarding import tracking

pytestmark = pytest.mark.django_db

S = PhoneNumber.SyncStatus


def act(client, model: str, action: str, *rows):
    return client.post(f"/admin/whatsapp/{model}/", {
        "action": action, "_selected_action": [str(r.pk) for r in rows]}, follow=True)


def text(response) -> str:
    return response.content.decode()


def test_support_cancels_a_pending_onboarding_and_the_tenant_page_offers_to_retry(
        support, org, api, django_capture_on_commit_callbacks):
    pending = OnboardingFactory(organization=org)
    tracking.remember(code=pending.tracking_code, organization_id=str(org.pk),
                      onboarding_id=str(pending.pk), created_at=0, redirect_path="/", ttl=60)
    other = OnboardingFactory()  # another tenant's, pending too: untouched
    with django_capture_on_commit_callbacks(execute=True):
        response = act(support, "onboarding", "cancel_selected", pending)
    assert "1 onboarding(s) cancelado(s): a página do cliente agora oferece tentar novamente." \
        in text(response)
    pending.refresh_from_db()
    assert pending.status == Onboarding.Status.CANCELLED
    assert Onboarding.objects.get(pk=other.pk).status == Onboarding.Status.PENDING
    entry = AuditLog.objects.get(action=AuditLog.Action.ONBOARDING_CANCELLED)
    assert entry.actor == support.user and entry.organization == org
    assert entry.target == f"onboarding:{pending.tracking_code}"
    assert tracking.lookup(pending.tracking_code) is None
    # The tenant's page (the API it polls) reads the cancelled state and its retry message.
    status = api.get("/api/v1/whatsapp/check-connection").json()
    assert status["status"] == "cancelled"
    assert status["message"] == "Conexão cancelada. Clique para tentar novamente."


def test_cancel_refuses_a_finished_onboarding_in_portuguese(support, org):
    done = OnboardingFactory(organization=org, status=Onboarding.Status.COMPLETED)
    response = act(support, "onboarding", "cancel_selected", done)
    assert (f"O onboarding {done.tracking_code} está com status “Concluído”: só um onboarding "
            "pendente pode ser cancelado.") in text(response)
    assert Onboarding.objects.get(pk=done.pk).status == Onboarding.Status.COMPLETED
    assert not AuditLog.objects.filter(action=AuditLog.Action.ONBOARDING_CANCELLED).exists()


def test_staff_without_the_support_group_cannot_cancel(client, org):
    user = UserFactory(is_staff=True)
    client.force_login(user)
    pending = OnboardingFactory(organization=org)
    act(client, "onboarding", "cancel_selected", pending)
    assert Onboarding.objects.get(pk=pending.pk).status == Onboarding.Status.PENDING


def test_support_resumes_stalled_and_failed_pipelines(support, org, broker,
                                                      django_capture_on_commit_callbacks):
    stalled = ConnectionFactory(organization=org, status=Connection.Status.CONNECTING,
                                pipeline_step="subscribe")
    failed = ConnectionFactory(status=Connection.Status.ERROR, pipeline_error="Graph 500")
    with django_capture_on_commit_callbacks(execute=True):
        response = act(support, "connection", "rerun_pipeline", stalled, failed)
    assert "Pipeline retomado para 2 conexão(ões)" in text(response)
    assert sorted(broker.of("run_connection_pipeline")) == sorted(
        [(str(stalled.pk),), (str(failed.pk),)])
    entries = AuditLog.objects.filter(action=AuditLog.Action.PIPELINE_RESUMED)
    assert {e.target for e in entries} == {f"waba:{stalled.waba_id}", f"waba:{failed.waba_id}"}
    assert all(e.actor == support.user for e in entries)


def test_resume_refuses_a_connected_connection_and_an_orphan_in_portuguese(
        support, org, broker, django_capture_on_commit_callbacks):
    connected = ConnectionFactory(organization=org)
    orphan = ConnectionFactory(organization=None, status=Connection.Status.ERROR)
    with django_capture_on_commit_callbacks(execute=True):
        response = act(support, "connection", "rerun_pipeline", connected, orphan)
    body = text(response)
    assert (f"A WABA {connected.waba_id} está com status “Conectado”: só uma conexão "
            "conectando ou com erro pode ser retomada.") in body
    assert "Conexão não encontrada, ou ainda órfã: reivindique-a primeiro." in body
    assert broker.of("run_connection_pipeline") == []
    assert not AuditLog.objects.filter(action=AuditLog.Action.PIPELINE_RESUMED).exists()


def coexistence_number(org, **fields) -> PhoneNumber:
    connection = ConnectionFactory(organization=org, is_coexistence=True)
    return PhoneNumberFactory(connection=connection, is_on_biz_app=True, **fields)


def test_support_rerequests_a_failed_sync_within_the_window(support, org, broker,
                                                            django_capture_on_commit_callbacks):
    number = coexistence_number(org, contacts_sync_status=S.REQUESTED,
                                contacts_sync_request_id="req-1", history_sync_status=S.FAILED,
                                sync_error="(#100) Invalid parameter")
    with django_capture_on_commit_callbacks(execute=True):
        response = act(support, "phonenumber", "rerequest_sync", number)
    assert "sincronização de histórico solicitada de novo" in text(response)
    number.refresh_from_db()
    assert number.history_sync_status == S.PENDING and number.sync_error == ""
    assert number.contacts_sync_status == S.REQUESTED
    assert broker.of("run_connection_pipeline") == [(str(number.connection_id),)]
    entry = AuditLog.objects.get(action=AuditLog.Action.SYNC_REREQUESTED)
    assert entry.actor == support.user
    assert entry.metadata == {"phone_number_id": number.phone_number_id, "kinds": ["history"]}


def test_rerequest_refuses_after_the_24h_window_in_portuguese(support, org, broker):
    number = coexistence_number(org, contacts_sync_status=S.FAILED)
    Connection.objects.filter(pk=number.connection_id).update(
        connected_at=timezone.now() - timedelta(hours=25))
    response = act(support, "phonenumber", "rerequest_sync", number)
    assert ("a Meta só permite a sincronização nas 24 horas após o onboarding; o prazo "
            "acabou.") in text(response)
    assert PhoneNumber.objects.get(pk=number.pk).contacts_sync_status == S.FAILED
    assert not AuditLog.objects.filter(action=AuditLog.Action.SYNC_REREQUESTED).exists()


def test_rerequest_refuses_when_meta_already_accepted_or_nothing_failed(support, org):
    accepted = coexistence_number(org, contacts_sync_status=S.FAILED,
                                  contacts_sync_request_id="req-9")
    fine = coexistence_number(org, contacts_sync_status=S.REQUESTED)
    body = text(act(support, "phonenumber", "rerequest_sync", accepted, fine))
    assert "a Meta já aceitou um pedido desta sincronização; ela só permite um." in body
    assert "nenhuma sincronização com falha para solicitar de novo." in body
    assert PhoneNumber.objects.get(pk=accepted.pk).contacts_sync_status == S.FAILED
    assert not AuditLog.objects.filter(action=AuditLog.Action.SYNC_REREQUESTED).exists()

