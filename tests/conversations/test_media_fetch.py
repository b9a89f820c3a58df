"""Media fetching against a mocked Graph: which messages get a media row, the tenant's token on
both calls, and the checks (Meta's window, declared size, type) before anything is stored."""

import hashlib

import pytest

from tests.factories import fixture_numbers
from tests.ingest_support import deliver
from tests.meta import GRAPH, load
from whatsapp.conversations.media import media_fetch, media_storage
from whatsapp.models import Message, MessageMedia

pytestmark = pytest.mark.django_db
MEDIA_ID = "505000000000001"  # history_media_asset_user_sent.json
CONTENT = b"\xff\xd8\xff\xe0 a photo of the living room \xff\xd9"
LOOKASIDE = "https://lookaside.example.com/whatsapp_business/attachments/"


@pytest.fixture
def history_media(client, broker, django_capture_on_commit_callbacks):
    numbers = fixture_numbers()
    connection = numbers["B"].connection
    connection.set_access_token("EAAtenantB")
    connection.save()
    with django_capture_on_commit_callbacks(execute=True):
        deliver(client, load("history_media_asset_user_sent.json"))
    return Message.objects.get(media_id=MEDIA_ID)


def answer(graph, *, mime="image/jpeg", size=None, served=None):
    graph.get(f"{GRAPH}/{MEDIA_ID}", json={
        "messaging_product": "whatsapp", "url": f"{LOOKASIDE}?mid={MEDIA_ID}&ext=1&hash=x",
        "mime_type": mime, "sha256": hashlib.sha256(CONTENT).hexdigest(),
        "file_size": size or len(CONTENT), "id": MEDIA_ID})
    graph.get(LOOKASIDE, body=CONTENT, content_type=served or mime)


def test_history_media_follow_up_is_tracked_and_fetched_with_the_tenants_token(
        history_media, broker, graph, settings):
    settings.WHATSAPP_MEDIA_FETCH_WINDOW_DAYS = 3650  # the fixture's date is months old
    media = MessageMedia.objects.get(message=history_media)
    assert media.status == "pending"
    assert broker.of("fetch_media") == [(history_media.pk,)]
    answer(graph)
    assert media_fetch(history_media.pk).status == "stored"
    assert [c.request.headers["Authorization"] for c in graph.calls] == ["Bearer EAAtenantB"] * 2
    media.refresh_from_db()
    assert (media.mime_type, media.size) == ("image/jpeg", len(CONTENT))
    with media_storage().open(media.file, "rb") as f:
        assert f.read() == CONTENT


def test_media_older_than_metas_window_is_not_asked_for(history_media, graph):
    assert media_fetch(history_media.pk).status == "expired"
    assert len(graph.calls) == 0


@pytest.mark.parametrize(("declared", "size", "served"), [
    ("application/x-msdownload", None, None),  # not on the allow-list
    ("image/jpeg", 10**9, None),  # Meta says it is too large: never downloaded
    ("image/jpeg", None, "text/html"),  # the download is not what Meta declared
])
def test_media_failing_a_check_is_rejected_and_not_stored(history_media, graph, settings,
                                                          declared, size, served):
    settings.WHATSAPP_MEDIA_FETCH_WINDOW_DAYS = 3650
    answer(graph, mime=declared, size=size, served=served)
    assert media_fetch(history_media.pk).status == "rejected"
    media = MessageMedia.objects.get(message=history_media)
    assert media.file == "" and media.error
    if size:
        assert len(graph.calls) == 1


def test_a_download_past_the_size_limit_stops_reading(history_media, graph, settings):
    settings.WHATSAPP_MEDIA_FETCH_WINDOW_DAYS = 3650
    settings.WHATSAPP_MEDIA_MAX_BYTES = 10
    graph.get(f"{GRAPH}/{MEDIA_ID}", json={"url": LOOKASIDE, "mime_type": "image/jpeg",
                                          "id": MEDIA_ID})  # no file_size stated
    graph.get(LOOKASIDE, body=CONTENT, content_type="image/jpeg")
    assert media_fetch(history_media.pk).status == "rejected"
