"""Media as Graph serves it (§0 / WhatsApp media reference): `GET /{media-id}` answers
`{messaging_product, url, mime_type, sha256, file_size, id}`; the url works for
MEDIA_URL_SECONDS and only with a token that covers the media's WABA (Meta: 5 minutes)."""

import hashlib
import hmac
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from .envelope import Change
from .graph_access import GraphError, caller_of, waba_for
from .models import Media, Waba

MEDIA_URL_SECONDS = 300
MEDIA_KINDS = ("image", "history_media")


def media_content(media_id: str) -> bytes:
    """A small JPEG-looking body, different per media id."""
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + f"sandbox {media_id}".encode() + b"\xff\xd9"


def media_register(waba: Waba, changes: list[Change]) -> None:
    """Keeps the media of inbound image events so Graph can serve them."""
    for change in changes:
        for item in change.value.get("messages") or []:
            image = item.get("image") if isinstance(item, dict) else None
            if isinstance(image, dict) and image.get("id"):
                content = media_content(image["id"])
                image["sha256"] = hashlib.sha256(content).hexdigest()
                Media.objects.update_or_create(pk=image["id"], defaults={
                    "waba": waba, "mime_type": image.get("mime_type") or "image/jpeg",
                    "content": content})


def _signature(media_id: str, expires: int) -> str:
    return hmac.new(settings.META_APP_SECRET.encode(), f"{media_id}:{expires}".encode(),
                    hashlib.sha256).hexdigest()


def media_node(request: HttpRequest, media_id: str) -> dict:
    media = Media.objects.get(pk=media_id)
    waba_for(caller_of(request), media.waba_id, "get")
    content = bytes(media.content)
    expires = int(time.time()) + MEDIA_URL_SECONDS
    url = request.build_absolute_uri(reverse("sandbox:media-download", args=[media_id]))
    return {"messaging_product": "whatsapp",
            "url": f"{url}?ext={expires}&hash={_signature(media_id, expires)}",
            "mime_type": media.mime_type, "sha256": hashlib.sha256(content).hexdigest(),
            "file_size": len(content), "id": media_id}


@require_GET
def media_download(request: HttpRequest, media_id: str) -> HttpResponse:
    """The short-lived url: a valid signature, not expired, and the Bearer token."""
    try:
        expires = int(request.GET.get("ext", "0"))
    except ValueError:
        expires = 0
    signed = hmac.compare_digest(request.GET.get("hash", ""), _signature(media_id, expires))
    media = Media.objects.filter(pk=media_id).first()
    if media is None or not signed:
        return JsonResponse({"error": "not found"}, status=404)
    if expires < time.time():
        return JsonResponse({"error": "url expired"}, status=404)
    try:
        waba_for(caller_of(request), media.waba_id, "get")
    except GraphError as error:
        return error.response()
    return HttpResponse(bytes(media.content), content_type=media.mime_type)
