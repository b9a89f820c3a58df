"""Production's static files: WhiteNoise serves them from gunicorn, compressed, under hashed
names cached for a year.

`production.py` imports these. The image build runs `collectstatic` with this module as its
settings: hashing and compressing files needs none of production's secrets, which
`production.py` refuses to start without.
"""

from .base import *  # noqa: F403
from .base import BASE_DIR, MIDDLEWARE, env

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
STATIC_ROOT = env.path("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
# Right after SecurityMiddleware (WhiteNoise's documented place): static responses skip the rest.
_security = MIDDLEWARE.index("django.middleware.security.SecurityMiddleware")
MIDDLEWARE = [*MIDDLEWARE[:_security + 1], "whitenoise.middleware.WhiteNoiseMiddleware",
              *MIDDLEWARE[_security + 1:]]
