"""Issue 14 §3 (building block) and §5b: the role of the caller in its organization, for a
session and a Bearer token, and staff endpoints that require the admin screens' permissions."""

import pytest
from django.contrib.auth.models import Permission
from django.template import RequestContext, Template
from django.test import RequestFactory
from rest_framework.test import APIClient

from organizations.models import ApiToken, Membership
from organizations.permissions import required_permissions
from tests.factories import MembershipFactory, UserFactory
from tests.support import staff_client

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.security.views")]


def session_client(membership) -> APIClient:
    client = APIClient()
    client.force_login(membership.user)
    return client


def token_client(membership) -> APIClient:
    _, raw = ApiToken.issue(user=membership.user, organization=membership.organization)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.mark.parametrize("make_client", [session_client, token_client], ids=["session", "token"])
def test_admin_may_and_member_may_not(make_client):
    admin = MembershipFactory(role=Membership.Role.ADMIN)
    member = MembershipFactory(role=Membership.Role.MEMBER)

    assert make_client(admin).get("/t/whoami").json() == {"role": "admin", "admin": True}
    assert make_client(member).get("/t/whoami").json() == {"role": "member", "admin": False}
    assert make_client(admin).post("/t/admin-only").status_code == 200
    refused = make_client(member).post("/t/admin-only")
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "Somente os administradores da organização podem fazer isso."}


def test_token_acts_with_its_own_organizations_role():
    # Admin of A, member of B: a token issued for B is a member's token.
    admin_of_a = MembershipFactory(role=Membership.Role.ADMIN)
    member_of_b = MembershipFactory(user=admin_of_a.user, role=Membership.Role.MEMBER)
    client = token_client(member_of_b)
    assert client.get("/t/whoami").json()["role"] == "member"
    assert client.post("/t/admin-only").status_code == 403


def test_demoted_admin_loses_admin_actions_at_once():
    membership = MembershipFactory(role=Membership.Role.ADMIN)
    client = token_client(membership)
    assert client.post("/t/admin-only").status_code == 200
    Membership.objects.filter(pk=membership.pk).update(role=Membership.Role.MEMBER)
    assert client.post("/t/admin-only").status_code == 403


def test_anonymous_gets_401_from_the_admin_permission():
    assert APIClient().post("/t/admin-only").status_code == 401


def test_templates_see_the_role():
    template = Template("{% if is_org_admin %}botões{% else %}somente leitura{% endif %}"
                        " {{ org_role }}")
    for role, expected in [("admin", "botões admin"), ("member", "somente leitura member")]:
        membership = MembershipFactory(role=role)
        request = RequestFactory().get("/")
        request.user = membership.user
        request.session = {}
        assert template.render(RequestContext(request)) == expected


def staff(*perms: str):
    return staff_client(*perms)


def test_staff_endpoint_requires_the_listed_permission():
    assert staff().get("/t/staff-webhooks").status_code == 403
    assert staff("whatsapp.view_webhooklog").get("/t/staff-webhooks").status_code == 200
    # Permissions without is_staff are not enough, and anonymous callers get nothing.
    plain = UserFactory(is_staff=False)
    plain.user_permissions.add(Permission.objects.get(codename="view_webhooklog"))
    client = APIClient()
    client.force_login(plain)
    assert client.get("/t/staff-webhooks").status_code == 403
    assert APIClient().get("/t/staff-webhooks").status_code in (401, 403)


def test_staff_endpoint_needs_every_listed_permission_on_class_views():
    assert staff("whatsapp.view_webhooklog").get("/t/staff-class").status_code == 403
    assert staff("whatsapp.view_webhooklog", "whatsapp.change_webhooklog").get(
        "/t/staff-class").status_code == 200


def test_a_staff_endpoint_that_lists_nothing_is_closed_even_to_superusers():
    superuser = UserFactory(is_staff=True, is_superuser=True)
    client = APIClient()
    client.force_login(superuser)
    assert client.get("/t/staff-undeclared").status_code == 403
    assert client.get("/t/staff-webhooks").status_code == 200


def test_required_permissions_refuses_to_sit_below_api_view():
    with pytest.raises(TypeError):
        required_permissions("whatsapp.view_webhooklog")(lambda request: None)
