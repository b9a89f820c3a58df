"""Issue 14 §2: an API token answers only while its user is an active member of its
organization; removing the membership or deactivating the user revokes it, audited."""

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from audit.models import AuditLog
from organizations.models import ApiToken, Membership
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db
STATUS = "/api/v1/whatsapp/connection/status"


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def member():
    membership = MembershipFactory(role=Membership.Role.MEMBER)
    token, raw = ApiToken.issue(user=membership.user, organization=membership.organization)
    return membership, token, raw


def test_token_works_while_the_membership_lives(member):
    _, _, raw = member
    assert bearer(raw).get(STATUS).status_code == 200


def test_removing_the_membership_revokes_the_token_and_audits_it(member):
    membership, token, raw = member
    other_org_token, other_raw = ApiToken.issue(
        user=membership.user,
        organization=MembershipFactory(user=membership.user).organization,
    )
    membership.delete()

    response = bearer(raw).get(STATUS)
    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized - missing organization"}
    token.refresh_from_db()
    assert token.revoked_at is not None
    # Only that organization's tokens: the user's other membership keeps its token.
    assert bearer(other_raw).get(STATUS).status_code == 200
    entry = AuditLog.objects.get(action=AuditLog.Action.API_TOKENS_REVOKED)
    assert entry.organization == membership.organization
    assert entry.metadata["reason"] == "membership_removed"
    assert entry.metadata["tokens"] == [token.token_prefix]
    assert raw not in str(entry.metadata)


def test_a_membership_gone_without_signals_still_locks_the_token_out(member):
    membership, _, raw = member
    # A raw delete (no signal, no revocation): authentication itself checks the membership.
    Membership.objects.filter(pk=membership.pk)._raw_delete(Membership.objects.db)
    assert bearer(raw).get(STATUS).status_code == 401


def test_deactivating_the_user_revokes_every_token_audited(member):
    membership, token, raw = member
    second = MembershipFactory(user=membership.user)
    _, raw2 = ApiToken.issue(user=membership.user, organization=second.organization)
    user = membership.user
    user.is_active = False
    user.save()

    assert bearer(raw).get(STATUS).status_code == 401
    assert bearer(raw2).get(STATUS).status_code == 401
    assert not ApiToken.objects.active().filter(user=user).exists()
    entries = AuditLog.objects.filter(action=AuditLog.Action.API_TOKENS_REVOKED)
    assert {e.organization_id for e in entries} == {membership.organization_id,
                                                   second.organization_id}
    assert {e.metadata["reason"] for e in entries} == {"user_deactivated"}
    # Reactivating does not bring the tokens back.
    user.is_active = True
    user.save()
    assert bearer(raw).get(STATUS).status_code == 401


def test_post_messages_refused_after_removal(member):
    membership, _, raw = member
    Membership.objects.filter(pk=membership.pk).delete()
    response = bearer(raw).post("/api/v1/whatsapp/messages",
                                {"type": "text", "to": "+5511987654321", "text": "oi"},
                                format="json")
    assert response.status_code == 401


def test_admin_removing_a_membership_is_audited_with_the_staff_user(client, member):
    membership, token, _ = member
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    response = client.post(f"/admin/organizations/membership/{membership.pk}/delete/",
                           {"post": "yes"})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    entry = AuditLog.objects.get(action=AuditLog.Action.API_TOKENS_REVOKED)
    assert entry.actor == staff and entry.ip_address == "127.0.0.1"


def test_deleting_the_organization_deletes_its_tokens_without_error(member):
    membership, token, _ = member
    membership.organization.delete()
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_unrelated_group_change_keeps_tokens(member):
    membership, token, raw = member
    user = membership.user
    user.groups.add(Group.objects.create(name="x"))
    user.first_name = "Mariana"
    user.save()
    assert bearer(raw).get(STATUS).status_code == 200
    assert not AuditLog.objects.filter(action=AuditLog.Action.API_TOKENS_REVOKED).exists()
