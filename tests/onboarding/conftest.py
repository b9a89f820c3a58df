"""Fixtures of the onboarding tests."""

import pytest

from tests.factories import OnboardingFactory


@pytest.fixture
def onboarding(org, admin_user):
    """A pending onboarding started by the organization's admin."""
    return OnboardingFactory(organization=org, created_by=admin_user)
