"""Media of conversation messages, copied from Meta into our storage (Meta's links expire)."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from .conversations import Message


class MessageMedia(models.Model):
    """One message's media file: fetched from Graph soon after the message is stored, kept
    for WHATSAPP_MEDIA_RETENTION_DAYS, then removed (the row stays, without the file)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting to be fetched")
        STORED = "stored", _("Stored")
        REJECTED = "rejected", _("Rejected (size or type)")
        FAILED = "failed", _("Could not be fetched")
        EXPIRED = "expired", _("No longer available at Meta")
        DELETED = "deleted", _("Removed after the retention period")

    organization = models.ForeignKey("organizations.Organization", on_delete=models.CASCADE,
                                     related_name="+", verbose_name=_("organization"))
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="media",
                                   verbose_name=_("message"))
    media_id = models.CharField(_("media id"), max_length=128)
    status = models.CharField(_("status"), max_length=16, choices=Status,
                              default=Status.PENDING, db_index=True)
    # Storage name (relative to the media storage); empty until stored and after removal.
    file = models.CharField(_("file"), max_length=255, blank=True)
    mime_type = models.CharField(_("file type"), max_length=128, blank=True)
    size = models.PositiveBigIntegerField(_("size (bytes)"), null=True, blank=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    error = models.CharField(_("error"), max_length=500, blank=True)
    stored_at = models.DateTimeField(_("stored at"), null=True, blank=True)
    deleted_at = models.DateTimeField(_("removed at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        db_table = "whatsapp_message_media"
        verbose_name = _("message media")
        verbose_name_plural = _("messages' media")

    def __str__(self) -> str:
        return f"{self.media_id} ({self.get_status_display()})"
