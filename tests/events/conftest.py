import pytest

from tests.events.receiver import SECRET


@pytest.fixture
def lead_events(settings):
    """Lead events go to an HTTP receiver (the tests call the dispatcher themselves)."""
    settings.LEAD_EVENTS_URL = "http://127.0.0.1:9/lead-events"
    settings.LEAD_EVENTS_SECRET = SECRET
    settings.LEAD_EVENTS_RETRY_SCHEDULE = [60, 600]
    settings.LEAD_EVENTS_TIMEOUT_SECONDS = 5
    return settings
