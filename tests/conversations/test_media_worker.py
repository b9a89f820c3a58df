"""With a real Celery worker: an inbound image from the sandbox is stored by the webhook
pipeline, and the `fetch_media` task (enqueued after that commit) copies it into our storage,
nobody calling anything by hand."""

import os

import pytest
from django.conf import settings
from django.db import connection

from tests.support import solo_worker, wait_for
from whatsapp.conversations.media import media_storage
from whatsapp.models import MessageMedia

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def worker(live_server, meta, tmp_path):
    db = connection.settings_dict
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "TEST_DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "TEST_REDIS_URL": settings.REDIS_URL,
           "META_GRAPH_API_URL": f"{live_server.url}/sandbox/graph",
           "MEDIA_ROOT": settings.MEDIA_ROOT}
    with solo_worker(env, tmp_path / "worker.log", settings.BASE_DIR) as proc:
        yield proc


def test_inbound_media_is_fetched_by_the_worker(meta, tenant, worker):
    phone = tenant["config"].phone_number_id
    assert meta.api("POST", "events", json={"kind": "image", "phone_number_id": phone}
                    ).status_code == 202

    media = wait_for(lambda: MessageMedia.objects.filter(status="stored").first(), timeout=60,
                     message="the worker to store the media")
    assert media.organization_id == tenant["org"].pk and media.mime_type == "image/jpeg"
    with media_storage().open(media.file, "rb") as f:
        assert f.read().startswith(b"\xff\xd8\xff")
