"""The minimal reference webhook receiver the product is compared with (bench only).

Verify the HMAC of the raw body, INSERT the raw body (one autocommit statement, raw SQL),
LPUSH the new id to a Redis list, answer 200. Two mounts of the same work:

* `DJANGO_PATH`, a Django view (bench/urls.py) through the same handler and middleware as the
  product's webhook: **the reference** the target ratio is computed against;
* `BARE_PATH`, a plain WSGI callable in bench/wsgi.py, with no Django handler or middleware:
  the ceiling of this stack, reported beside it.
"""

import hashlib
import hmac

from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

BARE_PATH = "/bench/reference-webhook"
DJANGO_PATH = "/bench/reference-webhook-django"
TABLE = "bench_reference_deliveries"
QUEUE = "bench:reference:queue"
CREATE_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, "
    "received_at timestamptz NOT NULL DEFAULT now(), raw_body bytea NOT NULL)"
)
_OK = b'{"received":true}'
_redis = None


def _redis_client():
    global _redis
    if _redis is None:
        from django_redis import get_redis_connection

        _redis = get_redis_connection("default")
    return _redis


def _valid(body: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(settings.META_APP_SECRET.encode(), body,
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def _store_and_signal(body: bytes) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} (raw_body) VALUES (%s) RETURNING id", [body])
        log_id = cursor.fetchone()[0]
    _redis_client().lpush(QUEUE, log_id)
    return log_id


def bare_wsgi(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    if not _valid(body, environ.get("HTTP_X_HUB_SIGNATURE_256", "")):
        start_response("403 Forbidden", [("Content-Type", "text/plain"),
                                         ("Content-Length", "9")])
        return [b"Forbidden"]
    try:
        _store_and_signal(body)
    except Exception:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain"),
                                                   ("Content-Length", "11")])
        return [b"Unavailable"]
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(_OK)))])
    return [_OK]


@csrf_exempt
def django_view(request):
    body = request.body
    if not _valid(body, request.headers.get("X-Hub-Signature-256", "")):
        return HttpResponse("Forbidden", status=403)
    _store_and_signal(body)
    return HttpResponse(_OK, content_type="application/json")
