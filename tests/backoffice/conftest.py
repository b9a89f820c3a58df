"""Fixtures of the back-office tests."""

import pytest
from django.contrib.auth.models import Group

from tests.factories import UserFactory
from whatsapp.backoffice.support import SUPPORT_GROUP


@pytest.fixture
def support(client):
    """The test client logged in as a staff user of the Suporte group (`client.user`)."""
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=SUPPORT_GROUP))
    client.force_login(user)
    client.user = user
    return client
