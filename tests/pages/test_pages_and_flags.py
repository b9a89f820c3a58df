import pytest

from tests.factories import ConnectionFactory, OrganizationFactory, PhoneNumberFactory
from whatsapp.models import AnalyticsEvent, FeatureFlag, FeatureFlagOverride, flags

pytestmark = pytest.mark.django_db
PAGE = "/dashboard/settings/whatsapp"


def test_settings_page_requires_login(client):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_settings_page_shows_instructions_in_portuguese(client, admin_user):
    client.force_login(admin_user)
    html = client.get(PAGE).content.decode()
    assert "Conexão WhatsApp" in html
    assert "Você precisará de uma conta do Facebook Business" in html
    assert "Conectar WhatsApp" in html
    assert 'aria-live="polite"' in html


def test_setup_screen_viewed_is_recorded_once_per_day(client, admin_user):
    client.force_login(admin_user)
    client.get(PAGE)
    client.get(PAGE)
    assert AnalyticsEvent.objects.filter(name=AnalyticsEvent.Name.SETUP_SCREEN_VIEWED).count() == 1


def test_connected_page_shows_the_green_card(client, admin_user, org):
    PhoneNumberFactory(connection=ConnectionFactory(organization=org))
    client.force_login(admin_user)
    html = client.get(PAGE).content.decode()
    assert "WhatsApp conectado" in html
    assert 'data-status="connected"' in html


def test_home_checklist_links_to_the_connection(client, admin_user):
    client.force_login(admin_user)
    html = client.get("/").content.decode()
    assert "Conectar WhatsApp" in html and PAGE in html


def test_undefined_flags_use_their_defaults(org):
    assert flags.flag_enabled(flags.SIGNUP_ENABLED, org) is True
    assert flags.flag_enabled(flags.V2_ONBOARDING, org) is False


def test_kill_switch_beats_overrides_and_blocks_the_api(api, org):
    flag = FeatureFlag.objects.create(name=flags.SIGNUP_ENABLED, kill_switch=True)
    FeatureFlagOverride.objects.create(flag=flag, organization=org, enabled=True)
    response = api.get("/api/v1/whatsapp/onboarding-url")
    assert response.status_code == 403
    assert "temporariamente indisponível" in response.json()["error"]


def test_percentage_rollout_is_stable_and_monotonic(db):
    orgs = OrganizationFactory.create_batch(200)
    flag = FeatureFlag.objects.create(name="some-rollout", rollout_percentage=25)
    at_25 = {o.pk for o in orgs if flags.flag_enabled("some-rollout", o)}
    assert at_25 == {o.pk for o in orgs if flags.flag_enabled("some-rollout", o)}
    assert 20 <= len(at_25) <= 80  # ~25 % of 200
    flag.rollout_percentage = 50
    flag.save()
    at_50 = {o.pk for o in orgs if flags.flag_enabled("some-rollout", o)}
    assert at_25 < at_50


def test_override_wins_over_percentage(org):
    flag = FeatureFlag.objects.create(name="some-rollout", rollout_percentage=0)
    assert flags.flag_enabled("some-rollout", org) is False
    FeatureFlagOverride.objects.create(flag=flag, organization=org, enabled=True)
    assert flags.flag_enabled("some-rollout", org) is True


def test_staff_without_organization_lands_in_the_admin(client):
    from tests.factories import UserFactory

    client.force_login(UserFactory(is_staff=True))
    response = client.get("/")
    assert response.status_code == 302 and response.url == "/admin/"
