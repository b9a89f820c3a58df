"""Issue 14 §5b: `/api/admin/whatsapp/*` answers the staff users the matching admin screens
answer: failed webhooks need `whatsapp.view_webhooklog` (the failed-webhooks dashboard), the
status needs `whatsapp.view_connection` (the connection pages)."""

import pytest
from rest_framework.test import APIClient

from tests.factories import OrganizationFactory
from tests.support import staff_client
from whatsapp.backoffice.support import SUPPORT_GROUP

pytestmark = pytest.mark.django_db
FAILED_WEBHOOKS = "/api/admin/whatsapp/failed-webhooks"
STATUS = "/api/admin/whatsapp/status"
ENDPOINTS = {FAILED_WEBHOOKS: "whatsapp.view_webhooklog", STATUS: "whatsapp.view_connection"}
ADMIN_SCREENS = {FAILED_WEBHOOKS: "/admin/whatsapp/webhooklog/dashboard/",
                 STATUS: "/admin/whatsapp/connection/"}
REFUSED = {"error": "Você não tem permissão para fazer isso."}


def client_for(*, staff: bool = True, superuser: bool = False, group: str = "",
               perms: tuple[str, ...] = ()) -> APIClient:
    return staff_client(*perms, group=group, superuser=superuser, staff=staff)


@pytest.fixture
def org():
    return OrganizationFactory()


def get(client: APIClient, path: str, org):
    return client.get(path, {"org": org.slug} if path == STATUS else {})


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_staff_without_permissions_gets_403_like_the_admin_screen(path, org):
    client = client_for()
    response = get(client, path, org)
    assert response.status_code == 403
    assert response.json() == REFUSED
    assert client.get(ADMIN_SCREENS[path]).status_code == 403


@pytest.mark.parametrize("path", list(ENDPOINTS))
@pytest.mark.parametrize("who", ["support group", "superuser", "the screen's permission"])
def test_those_the_admin_screen_answers_get_200(path, who, org):
    client = {"support group": lambda: client_for(group=SUPPORT_GROUP),
              "superuser": lambda: client_for(superuser=True),
              "the screen's permission": lambda: client_for(perms=(ENDPOINTS[path],))}[who]()
    response = get(client, path, org)
    assert response.status_code == 200
    assert client.get(ADMIN_SCREENS[path]).status_code == 200
    if path == STATUS:
        assert response.json()["organization_id"] == str(org.pk)
    else:
        assert "summary" in response.json()


def test_each_endpoint_needs_its_own_screens_permission(org):
    webhooks_only = client_for(perms=("whatsapp.view_webhooklog",))
    assert get(webhooks_only, FAILED_WEBHOOKS, org).status_code == 200
    assert get(webhooks_only, STATUS, org).status_code == 403
    connections_only = client_for(perms=("whatsapp.view_connection",))
    assert get(connections_only, STATUS, org).status_code == 200
    assert get(connections_only, FAILED_WEBHOOKS, org).status_code == 403


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_permissions_without_staff_or_login_get_nothing(path, org):
    not_staff = client_for(staff=False, perms=tuple(ENDPOINTS.values()))
    assert get(not_staff, path, org).status_code == 403
    assert get(APIClient(), path, org).status_code in (401, 403)
