"""Media of conversation messages (images, audio, video, documents, stickers).

Meta only keeps a media id: `GET /{media-id}` gives a url that lives minutes, and the media
itself is gone after about 30 days. So each stored message with a media id gets a pending
`MessageMedia` row in the same transaction, and the `fetch_media` task (bulk work) copies the
file soon after: size- and type-checked, stored through Django's storage API (local file
system by default, S3-compatible storage in production), handed to the tenant through a signed,
expiring link (`media_link_token`), removed after WHATSAPP_MEDIA_RETENTION_DAYS.
"""

import hashlib
import logging
import mimetypes
import os
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string

from audit.models import AuditLog
from audit.services import audit_record
from whatsapp.core import jobs
from whatsapp.core.backoff import backoff
from whatsapp.core.graph import GraphClient, GraphError, MediaTooLarge
from whatsapp.models import Message, MessageMedia

from .contacts import chunks

logger = logging.getLogger(__name__)

M = MessageMedia.Status
LINK_SALT = "whatsapp.media-link"


@dataclass
class Outcome:
    status: str
    retry_in: float | None = None


def media_storage() -> Storage:
    """The storage configured by WHATSAPP_MEDIA_STORAGE (MEDIA_ROOT/whatsapp by default)."""
    conf = settings.WHATSAPP_MEDIA_STORAGE
    options = dict(conf.get("OPTIONS") or {})
    if conf["BACKEND"].endswith("FileSystemStorage") and "location" not in options:
        options["location"] = os.path.join(settings.MEDIA_ROOT, "whatsapp")
    return import_string(conf["BACKEND"])(**options)


def media_track(wamids: list[str]) -> None:
    """Pending media rows for these stored messages that carry a media id; their fetch is
    enqueued once the transaction commits (`media_sweep` finds a lost publish again)."""
    if not wamids:
        return
    found = []
    for batch in chunks(wamids):
        found += list(Message.objects.filter(wamid__in=batch, organization__isnull=False)
                      .exclude(media_id="").values_list("pk", "organization_id", "media_id"))
    if not found:
        return
    MessageMedia.objects.bulk_create(
        [MessageMedia(message_id=pk, organization_id=org, media_id=media_id)
         for pk, org, media_id in found], ignore_conflicts=True)
    ids = [pk for pk, _org, _media in found]
    transaction.on_commit(lambda: [media_enqueue(pk) for pk in ids])


def media_enqueue(message_id: int, *, countdown: float | None = None) -> None:
    jobs.enqueue_quietly("fetch_media", message_id, countdown=countdown)


def _mime(value: str) -> str:
    return value.split(";")[0].strip().lower()


def media_fetch(message_id: int) -> Outcome:
    """Copies one message's media from Meta, once; safe to run twice (the claim lets one in)."""
    media = (MessageMedia.objects.select_related("message__config__connection")
             .filter(message_id=message_id).first())
    if media is None or media.status != M.PENDING:
        return Outcome("skipped")
    claimed = (MessageMedia.objects.filter(pk=media.pk, status=M.PENDING, attempts=media.attempts)
               .update(attempts=F("attempts") + 1))
    if not claimed:
        return Outcome("skipped")
    media.attempts += 1
    window = timedelta(days=settings.WHATSAPP_MEDIA_FETCH_WINDOW_DAYS)
    if media.message.timestamp < timezone.now() - window:
        return _finish(media, M.EXPIRED, "older than Meta keeps media")
    config = media.message.config
    token = config.connection.get_access_token() if config is not None else ""
    if not token:
        return _finish(media, M.FAILED, "no access token for this number")
    try:
        return _fetch(media, GraphClient(token))
    except MediaTooLarge:
        return _finish(media, M.REJECTED, "larger than WHATSAPP_MEDIA_MAX_BYTES")
    except GraphError as exc:
        if (exc.is_transient or exc.status == 0) and \
                media.attempts < settings.WHATSAPP_MEDIA_FETCH_MAX_ATTEMPTS:
            MessageMedia.objects.filter(pk=media.pk).update(error=str(exc)[:500])
            return Outcome("retry", retry_in=backoff(media.attempts, base=10, cap=1800)
                           .total_seconds())
        return _finish(media, M.FAILED, str(exc))


def _fetch(media: MessageMedia, client: GraphClient) -> Outcome:
    allowed = {_mime(t) for t in settings.WHATSAPP_MEDIA_ALLOWED_TYPES}
    limit = settings.WHATSAPP_MEDIA_MAX_BYTES
    info = client.media_info(media.media_id)
    declared = _mime(str(info.get("mime_type") or ""))
    if declared and declared not in allowed:
        return _finish(media, M.REJECTED, f"type {declared} is not allowed")
    if int(info.get("file_size") or 0) > limit:
        return _finish(media, M.REJECTED, "larger than WHATSAPP_MEDIA_MAX_BYTES")
    url = str(info.get("url") or "")
    if not url:
        raise GraphError(status=502, code=None, message="Meta gave no media url")
    content, content_type = client.media_download(url, max_bytes=limit)
    served = _mime(content_type)
    mime = declared if served in ("", "application/octet-stream") else served
    if mime not in allowed or (declared and mime != declared):
        return _finish(media, M.REJECTED, f"type {mime or 'unknown'} is not allowed")
    digest = hashlib.sha256(content).hexdigest()
    if info.get("sha256") and str(info["sha256"]).lower() != digest:
        # A truncated or corrupted download: worth another try.
        raise GraphError(status=502, code=None, message="media checksum mismatch")
    name = media_storage().save(_file_name(media, mime), ContentFile(content))
    return _finish(media, M.STORED, "", file=name, mime_type=mime, size=len(content),
                   sha256=digest, stored_at=timezone.now())


def _file_name(media: MessageMedia, mime: str) -> str:
    ext = mimetypes.guess_extension(mime) or ".bin"
    return f"{media.organization_id}/{timezone.now():%Y/%m}/{uuid.uuid4().hex}{ext}"


def _finish(media: MessageMedia, status: str, error: str, **fields) -> Outcome:
    MessageMedia.objects.filter(pk=media.pk, status=M.PENDING).update(
        status=status, error=error[:500], **fields)
    if status != M.STORED:
        logger.info("Media of message %s: %s (%s)", media.message_id, status, error)
    return Outcome(status)


def media_sweep(*, limit: int = 500) -> int:
    """Re-enqueues pending media whose fetch was never published or whose worker died."""
    ids = list(MessageMedia.objects.filter(
        status=M.PENDING, created_at__lte=timezone.now() - timedelta(minutes=10),
        attempts__lt=settings.WHATSAPP_MEDIA_FETCH_MAX_ATTEMPTS,
    ).order_by("pk").values_list("message_id", flat=True)[:limit])
    for message_id in ids:
        media_enqueue(message_id)
    return len(ids)


def media_retry(media_ids, *, actor, request=None) -> list[MessageMedia]:
    """Support asks again for media whose fetch failed (e.g. no token until the tenant
    reconnected): back to pending with its attempts from zero, fetched after commit, one audit
    entry each. Only failed rows: rejected ones break our rules, expired ones Meta no longer has.
    Returns the rows queued."""
    with transaction.atomic():
        failed = list(MessageMedia.objects.select_for_update(of=("self",))
                      .select_related("organization", "message")
                      .filter(pk__in=list(media_ids), status=M.FAILED).order_by("pk"))
        MessageMedia.objects.filter(pk__in=[m.pk for m in failed]).update(
            status=M.PENDING, attempts=0, error="")
        for media in failed:
            audit_record(action=AuditLog.Action.MEDIA_FETCH_RETRIED,
                         organization=media.organization, actor=actor, request=request,
                         target=f"message:{media.message.wamid}",
                         metadata={"media": media.pk, "error": media.error})
        ids = [m.message_id for m in failed]
        transaction.on_commit(lambda: [media_enqueue(pk) for pk in ids])
    return failed


def media_purge(*, limit: int = 1000) -> int:
    """Retention: removes stored files older than WHATSAPP_MEDIA_RETENTION_DAYS."""
    cutoff = timezone.now() - timedelta(days=settings.WHATSAPP_MEDIA_RETENTION_DAYS)
    due = list(MessageMedia.objects.filter(status=M.STORED, stored_at__lt=cutoff)
               .order_by("stored_at")[:limit])
    storage = media_storage()
    for media in due:
        if media.file:
            storage.delete(media.file)
        MessageMedia.objects.filter(pk=media.pk).update(status=M.DELETED, file="",
                                                        deleted_at=timezone.now())
    return len(due)


class LinkExpired(Exception):
    pass


class LinkInvalid(Exception):
    pass


def media_link_token(media: MessageMedia) -> str:
    """The opaque part of a media link: the organization and the media, signed and dated."""
    return signing.TimestampSigner(salt=LINK_SALT).sign(f"{media.organization_id}.{media.pk}")


def media_link_target(token: str) -> tuple[str, int]:
    """(organization id, media id) of a link; LinkExpired after WHATSAPP_MEDIA_LINK_TTL_SECONDS,
    LinkInvalid for anything not signed by us."""
    try:
        value = signing.TimestampSigner(salt=LINK_SALT).unsign(
            token, max_age=settings.WHATSAPP_MEDIA_LINK_TTL_SECONDS)
    except signing.SignatureExpired as exc:
        raise LinkExpired from exc
    except signing.BadSignature as exc:
        raise LinkInvalid from exc
    org, _, pk = value.rpartition(".")
    return org, int(pk)
