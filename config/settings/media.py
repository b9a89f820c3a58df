"""WhatsApp media settings (README "Media"), read from the environment like the rest of
`config.settings.base` (which imports this module): where copies of Meta's media are stored,
what is accepted, how long links and files live."""

from pathlib import Path

import environ

env = environ.Env()  # the .env file was read by base, into the process environment

MEDIA_ROOT = env("MEDIA_ROOT", default=str(Path(__file__).resolve().parents[2] / "media"))
# Larger files are refused (before download when Meta says the size, else while reading).
WHATSAPP_MEDIA_MAX_BYTES = env.int("WHATSAPP_MEDIA_MAX_BYTES", default=25 * 1024 * 1024)
# Only these MIME types are stored (WhatsApp's media types; no executables, no HTML).
WHATSAPP_MEDIA_ALLOWED_TYPES = env.list("WHATSAPP_MEDIA_ALLOWED_TYPES", default=[
    "image/jpeg", "image/png", "image/webp",
    "audio/ogg", "audio/mpeg", "audio/mp4", "audio/aac", "audio/amr",
    "video/mp4", "video/3gpp",
    "application/pdf", "text/plain",
    "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
])
# Stored files are removed this many days after they were stored (beat, hourly).
WHATSAPP_MEDIA_RETENTION_DAYS = env.int("WHATSAPP_MEDIA_RETENTION_DAYS", default=90)
# Lifetime of a `mediaUrl` link handed out by the API.
WHATSAPP_MEDIA_LINK_TTL_SECONDS = env.int("WHATSAPP_MEDIA_LINK_TTL_SECONDS", default=900)
# Meta keeps a media id downloadable for about 30 days: older ones are not tried.
WHATSAPP_MEDIA_FETCH_WINDOW_DAYS = env.int("WHATSAPP_MEDIA_FETCH_WINDOW_DAYS", default=30)
WHATSAPP_MEDIA_FETCH_MAX_ATTEMPTS = env.int("WHATSAPP_MEDIA_FETCH_MAX_ATTEMPTS", default=6)

# Storage: the local file system under MEDIA_ROOT/whatsapp by default; S3-compatible storage
# (django-storages, `uv sync --extra s3`) when WHATSAPP_MEDIA_S3_BUCKET is set.
WHATSAPP_MEDIA_S3_BUCKET = env("WHATSAPP_MEDIA_S3_BUCKET", default="")
if WHATSAPP_MEDIA_S3_BUCKET:
    WHATSAPP_MEDIA_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": WHATSAPP_MEDIA_S3_BUCKET,
            "endpoint_url": env("WHATSAPP_MEDIA_S3_ENDPOINT_URL", default=None),
            "region_name": env("WHATSAPP_MEDIA_S3_REGION", default=None),
            "access_key": env("WHATSAPP_MEDIA_S3_ACCESS_KEY_ID", default=None),
            "secret_key": env("WHATSAPP_MEDIA_S3_SECRET_ACCESS_KEY", default=None),
            "location": env("WHATSAPP_MEDIA_S3_PREFIX", default="whatsapp-media"),
            # Private objects: the product streams them after its own checks.
            "default_acl": "private",
            "file_overwrite": False,
        },
    }
else:
    # No location: MEDIA_ROOT/whatsapp, read when the storage is opened.
    WHATSAPP_MEDIA_STORAGE = {"BACKEND": "django.core.files.storage.FileSystemStorage",
                              "OPTIONS": {}}
