"""The dashboard that points at work (issue 18 item 4): its numbers for a prepared set of rows,
and each tile's link lands on an admin list showing exactly those rows."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from tests.factories import (
    ConnectionFactory,
    OnboardingFactory,
    OrganizationFactory,
    OutboundMessageFactory,
    PhoneNumberFactory,
    UserFactory,
    WebhookLogFactory,
)
from whatsapp.backoffice.support import SUPPORT_GROUP
from whatsapp.backoffice.work import percentile
from whatsapp.models import (
    Connection,
    FeatureFlag,
    Onboarding,
    OutboundMessage,
    PhoneNumber,
    WebhookLog,
)
from whatsapp.models.flags import V2_ONBOARDING
from whatsapp.onboarding.signup import onboarding_start

pytestmark = pytest.mark.django_db

C, S, T = Connection.Status, PhoneNumber.SyncStatus, Connection.TokenStatus
OS, V, M = Onboarding.Status, Onboarding.Variant, OutboundMessage.Status


@pytest.fixture
def support(client):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=SUPPORT_GROUP))
    client.force_login(user)
    return client


def ago(**kwargs):
    return timezone.now() - timedelta(**kwargs)


def later(**kwargs):
    return timezone.now() + timedelta(**kwargs)


@pytest.fixture
def world():
    """Rows for every tile, each beside a near miss that must not be counted."""
    soon = ConnectionFactory(token_status=T.VALID, token_expires_at=later(days=5))
    month = ConnectionFactory(token_status=T.VALID, token_expires_at=later(days=20))
    ConnectionFactory(token_status=T.VALID, token_expires_at=None)  # never expires
    ConnectionFactory(token_status=T.VALID, token_expires_at=later(days=3),
                      status=C.DISCONNECTED, disconnected_at=ago(days=1))
    stalled = ConnectionFactory(status=C.CONNECTING, pipeline_step="subscribe")
    Connection.objects.filter(pk=stalled.pk).update(updated_at=ago(minutes=10))
    ConnectionFactory(status=C.CONNECTING)  # progressed just now
    error = ConnectionFactory(status=C.ERROR, pipeline_error="Graph 500")
    orphan = ConnectionFactory(organization=None, status=C.ERROR)
    invalid = ConnectionFactory(token_status=T.INVALID)
    sync_failed = PhoneNumberFactory(contacts_sync_status=S.REQUESTED,
                                     history_sync_status=S.FAILED)
    PhoneNumberFactory(contacts_sync_status=S.REQUESTED, history_sync_status=S.REQUESTED)

    parked = WebhookLog.Status.PARKED
    a_old = WebhookLogFactory(status=parked, parked_phone_number_id="111",
                              received_at=ago(minutes=30))
    a_new = WebhookLogFactory(status=parked, parked_phone_number_id="111",
                              received_at=ago(minutes=5))
    b = WebhookLogFactory(status=parked, parked_phone_number_id="222", received_at=ago(minutes=10))
    WebhookLogFactory(status=WebhookLog.Status.PROCESSED, parked_phone_number_id="111")

    failed_a = OutboundMessageFactory(status=M.FAILED, error_code=131047)
    failed_b = OutboundMessageFactory(status=M.FAILED, error_code=131047)
    failed_c = OutboundMessageFactory(status=M.FAILED, error_code=131026)
    delivered = OutboundMessageFactory(status=M.DELIVERED)
    old = OutboundMessageFactory(status=M.FAILED, error_code=131047)
    OutboundMessage.objects.filter(pk=old.pk).update(created_at=ago(days=40))

    def onboarding(variant, status=OS.PENDING, seconds=None):
        row = OnboardingFactory(variant=variant, status=status)
        if seconds is not None:
            Onboarding.objects.filter(pk=row.pk).update(
                created_at=ago(hours=1), completed_at=ago(hours=1) + timedelta(seconds=seconds))
        return row

    popup = [onboarding(V.POPUP, OS.COMPLETED, s) for s in (60, 100, 200)]
    popup.append(onboarding(V.POPUP))
    hosted = [onboarding(V.HOSTED_LINK, OS.COMPLETED, 30), onboarding(V.HOSTED_LINK, OS.CANCELLED)]
    stale = onboarding(V.POPUP, OS.COMPLETED, 10)
    Onboarding.objects.filter(pk=stale.pk).update(created_at=ago(days=40))
    return {
        "tiles": {"token_invalid": {invalid}, "token_expiring_7": {soon},
                  "token_expiring_30": {soon, month}, "stalled": {stalled}, "error": {error},
                  "sync_failed": {sync_failed}, "orphans": {orphan}},
        "parked": {"111": {a_old, a_new}, "222": {b}},
        "sends_by_status": {"Falhou": {failed_a, failed_b, failed_c}, "Entregue": {delivered}},
        "sends_by_error": {"Erro da Meta 131047": {failed_a, failed_b},
                           "Erro da Meta 131026": {failed_c}},
        "popup": popup, "hosted": hosted,
    }


def listed(client, url: str) -> set:
    response = client.get(url)
    assert response.status_code == 200, url
    return {row.pk for row in response.context["cl"].queryset}


def pks(rows) -> set:
    return {row.pk for row in rows}


def test_work_tiles_count_and_link_to_exactly_their_rows(support, world):
    page = support.get("/admin/")
    tiles = {t["key"]: t for t in page.context["work_tiles"]}
    assert {k: t["count"] for k, t in tiles.items()} == {
        k: len(rows) for k, rows in world["tiles"].items()}
    html = page.content.decode()
    assert "Pipelines parados (conectando sem progresso há 5 min)" in html
    for key, rows in world["tiles"].items():
        assert f'data-tile="{key}"' in html
        assert listed(support, tiles[key]["url"]) == pks(rows), key


def test_the_stall_setting_decides_what_is_stalled(support, world, settings):
    settings.WHATSAPP_PIPELINE_STALL_SECONDS = 3600
    tiles = {t["key"]: t for t in support.get("/admin/").context["work_tiles"]}
    assert tiles["stalled"]["count"] == 0
    assert listed(support, tiles["stalled"]["url"]) == set()


def test_parked_deliveries_by_number_oldest_first_with_age(support, world):
    rows = support.get("/admin/").context["parked_by_number"]
    assert [(r["number"], r["count"]) for r in rows] == [("111", 2), ("222", 1)]
    assert [r["age_minutes"] for r in rows] == [30, 10]
    for row in rows:
        assert listed(support, row["url"]) == pks(world["parked"][row["number"]])


def test_sends_by_status_and_error_code_in_the_period(support, world):
    sends = support.get("/admin/", {"period": "30"}).context["sends"]
    assert [(r["label"], r["count"]) for r in sends["by_status"]] == [("Falhou", 3),
                                                                       ("Entregue", 1)]
    assert [(r["label"], r["count"]) for r in sends["by_error"]] == [
        ("Erro da Meta 131047", 2), ("Erro da Meta 131026", 1)]
    for row in sends["by_status"]:
        assert listed(support, row["url"]) == pks(world["sends_by_status"][row["label"]])
    for row in sends["by_error"]:
        assert listed(support, row["url"]) == pks(world["sends_by_error"][row["label"]])


def test_funnel_by_variant_with_success_rate_and_percentiles(support, world):
    page = support.get("/admin/", {"period": "30"})
    rows = {r["variant"]: r for r in page.context["funnel_by_variant"]}
    popup, hosted = rows["popup"], rows["hosted_link"]
    assert (popup["label"], popup["started"], popup["completed"], popup["success_rate"]) == (
        "Pop-up (Cadastro incorporado)", 4, 3, 75.0)
    assert (popup["p50_seconds"], popup["p90_seconds"]) == (100, 180)
    assert popup["within_target"] is False  # p90 180 s: over seed 000's 2 minutes
    assert (hosted["started"], hosted["completed"], hosted["success_rate"]) == (2, 1, 50.0)
    assert (hosted["p50_seconds"], hosted["p90_seconds"], hosted["within_target"]) == (
        30, 30, True)
    assert "" not in rows  # no onboarding without a variant in the period
    assert listed(support, popup["url"]) == pks(world["popup"])
    assert listed(support, popup["completed_url"]) == pks(world["popup"][:3])
    assert listed(support, hosted["url"]) == pks(world["hosted"])
    html = page.content.decode()
    assert "Conexões por variante do lançamento" in html
    assert "meta: menos de 2 min" in html


def test_the_funnel_follows_the_organization_filter(support, world):
    org = OrganizationFactory()
    mine = OnboardingFactory(organization=org, variant=Onboarding.Variant.HOSTED_LINK)
    rows = {r["variant"]: r for r in support.get("/admin/", {"org": str(org.pk)})
            .context["funnel_by_variant"]}
    assert rows["popup"]["started"] == 0 and rows["hosted_link"]["started"] == 1
    assert listed(support, rows["hosted_link"]["url"]) == {mine.pk}


def test_percentile_matches_percentile_cont():
    assert percentile([], 0.5) is None
    assert percentile([60, 100, 200], 0.5) == 100
    assert percentile([60, 100, 200], 0.9) == pytest.approx(180)
    assert percentile([10, 20, 30, 40], 0.5) == 25


def test_onboarding_start_records_the_rollout_variant():
    org = OrganizationFactory()
    assert onboarding_start(organization=org, user=None, redirect_path="/").variant == V.POPUP
    FeatureFlag.objects.create(name=V2_ONBOARDING, rollout_percentage=100)
    assert onboarding_start(organization=org, user=None,
                            redirect_path="/").variant == V.HOSTED_LINK
