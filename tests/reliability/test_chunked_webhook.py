"""Issue 14 §7: a signed delivery sent with `Transfer-Encoding: chunked` (no Content-Length)
is never called forged. Real chunked requests over a socket: against gunicorn (the production
server, which decodes the chunks and ends the stream) the body is read with the size limit and
stored; against a server that cannot read chunked bodies (Django's own, the live server) the
answer is 411 and nothing is counted as forged.
"""

import select
import socket
import time
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from whatsapp.models import WebhookLog
from whatsapp.webhooks.signatures import sign

from .conftest import envelope

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/api/v1/whatsapp/webhook"


def forged_counter_key() -> str:
    return f"whatsapp:webhook:invalid_signature:{timezone.now():%Y%m%d}"


def post_chunked(base_url: str, body: bytes, signature: str, *,
                 chunk: int = 700) -> tuple[int, bytes]:
    """A raw HTTP/1.1 POST with Transfer-Encoding: chunked and no Content-Length."""
    url = urlparse(base_url)
    head = (f"POST {PATH} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            f"X-Hub-Signature-256: {signature}\r\nUser-Agent: facebookexternalua\r\n"
            "Connection: close\r\n\r\n").encode()
    parts = [head]
    for start in range(0, len(body), chunk):
        piece = body[start:start + chunk]
        parts.append(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    parts.append(b"0\r\n\r\n")
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(parts[0])
        # A server that cannot read chunked bodies answers right after the headers and closes;
        # writing the body into a closed socket would make its kernel reset the connection
        # and drop that answer. So the body goes only if no answer came first.
        answered_early, _, _ = select.select([sock], [], [], 0.5)
        if not answered_early:
            try:
                for part in parts[1:]:
                    sock.sendall(part)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # it answered and closed while we were sending: read the answer
        raw = b""
        while data := sock.recv(65536):
            raw += data
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def delivery(marker: str) -> bytes:
    return envelope("messages", {"messaging_product": "whatsapp",
                                 "metadata": {"phone_number_id": "304000000000404",
                                              "display_phone_number": "5511940000404"},
                                 "statuses": [{"id": f"wamid.{marker}", "status": "sent",
                                               "timestamp": str(int(time.time())),
                                               "recipient_id": "5511988887777"}]})


def test_gunicorn_reads_a_chunked_delivery_with_the_size_limit(stack):
    web = stack.start_web(env={"WHATSAPP_WEBHOOK_MAX_BYTES": "20000"})
    counter = stack.cache.client()

    body = delivery("chunked-ok")
    status, answer = post_chunked(web, body, sign(body, settings.META_APP_SECRET))
    assert (status, answer) == (200, b'{"received": true}')
    assert bytes(WebhookLog.objects.get().raw_body) == body  # byte for byte

    # Over the limit while streaming: 413, never stored, never counted as forged.
    big = envelope("history", {"padding": "x" * 30000})
    status, _ = post_chunked(web, big, sign(big, settings.META_APP_SECRET))
    assert status == 413
    assert WebhookLog.objects.count() == 1
    assert counter.get(forged_counter_key()) is None

    # A forged chunked body is still forged: read, checked, refused, counted.
    status, answer = post_chunked(web, body, sign(body, "not-the-app-secret"))
    assert status == 403 and b"Invalid signature" in answer
    assert int(counter.get(forged_counter_key())) == 1
    assert WebhookLog.objects.count() == 1


def test_a_server_that_cannot_read_chunked_bodies_answers_411_not_forged(live_server):
    cache.delete(forged_counter_key())
    body = delivery("chunked-411")
    status, answer = post_chunked(live_server.url, body, sign(body, settings.META_APP_SECRET))

    assert status == 411
    assert b"Content-Length" in answer
    assert cache.get(forged_counter_key()) is None
    assert not WebhookLog.objects.exists()
