"""WSGI entry of the bench's gunicorn: the product, plus the bare reference endpoint.

`/bench/reference-webhook` is answered before Django's handler (no middleware, no URL
resolution, no ORM, no Celery): the ceiling this stack can reach for "verify, store, signal".
Everything else goes to the product's Django application unchanged.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

django_application = get_wsgi_application()

from bench import reference  # noqa: E402


def application(environ, start_response):
    if environ.get("PATH_INFO") == reference.BARE_PATH:
        return reference.bare_wsgi(environ, start_response)
    return django_application(environ, start_response)
