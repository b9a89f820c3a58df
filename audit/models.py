from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditLogQuerySet(models.QuerySet):
    # Append-only: bulk changes are refused like single-row ones.
    def update(self, **kwargs):
        raise PermissionError("The audit log is append-only.")

    def delete(self):
        raise PermissionError("The audit log is append-only.")


class AuditLog(models.Model):
    """Append-only record of who did what to a tenant's WhatsApp connection."""

    class Action(models.TextChoices):
        WHATSAPP_CONNECTED = "WHATSAPP_CONNECTED", _("WhatsApp connected")
        WHATSAPP_DISCONNECTED = "WHATSAPP_DISCONNECTED", _("WhatsApp disconnected")
        WABA_ORPHANED = "WABA_ORPHANED", _("WABA received without an organization")
        WABA_AWAITING_BROWSER = "WABA_AWAITING_BROWSER", _(
            "WABA received, awaiting the browser's confirmation")
        WABA_CLAIMED = "WABA_CLAIMED", _("Orphan WABA claimed")
        TOKEN_INVALIDATED = "TOKEN_INVALIDATED", _("Token invalidated")
        WEBHOOK_REPLAYED = "WEBHOOK_REPLAYED", _("Webhook replayed")
        KEY_ROTATED = "KEY_ROTATED", _("Encryption key rotated")
        API_TOKENS_REVOKED = "API_TOKENS_REVOKED", _("API tokens revoked")
        LOGIN_LOCKED_OUT = "LOGIN_LOCKED_OUT", _("Login locked out")
        ONBOARDING_CANCELLED = "ONBOARDING_CANCELLED", _("Onboarding cancelled by support")
        PIPELINE_RESUMED = "PIPELINE_RESUMED", _("Pipeline resumed by support")
        SYNC_REREQUESTED = "SYNC_REREQUESTED", _("Coexistence sync requested again")
        PIPELINE_FAILED = "PIPELINE_FAILED", _("Connection setup failed")
        PIPELINE_RETRIED = "PIPELINE_RETRIED", _("Connection setup retried by the organization")
        WABA_FOUND_BY_RECONCILIATION = "WABA_FOUND_BY_RECONCILIATION", _(
            "WABA found by reconciliation with Meta")
        WABA_NO_LONGER_SHARED = "WABA_NO_LONGER_SHARED", _("WABA no longer shared with us")
        CONTACT_EXPORTED = "CONTACT_EXPORTED", _("Lead data exported")
        CONTACT_ERASURE_REQUESTED = "CONTACT_ERASURE_REQUESTED", _("Lead erasure requested")
        CONTACT_ERASED = "CONTACT_ERASED", _("Lead erased")
        DATA_DELETION_REQUESTED = "DATA_DELETION_REQUESTED", _(
            "Data deletion requested through Meta")
        DATA_DELETION_COMPLETED = "DATA_DELETION_COMPLETED", _(
            "Data deletion through Meta completed")
        CONVERSATION_HANDED_BACK = "CONVERSATION_HANDED_BACK", _(
            "Conversation handed back to the automation")
        MEDIA_FETCH_RETRIED = "MEDIA_FETCH_RETRIED", _("Media download retried by support")

    organization = models.ForeignKey(
        "organizations.Organization", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="audit_logs", verbose_name=_("organization"),
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", verbose_name=_("user"),
    )
    # Who acted when there is no user: "meta-webhook", "system", "manage.py".
    actor_label = models.CharField(_("actor"), max_length=100, blank=True)
    action = models.CharField(_("action"), max_length=40, choices=Action, db_index=True)
    target = models.CharField(_("target"), max_length=200, blank=True)
    metadata = models.JSONField(_("details"), default=dict, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        db_table = "audit_logs"
        ordering = ["-created_at", "-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")

    def __str__(self) -> str:
        return f"{self.get_action_display()} · {self.target}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise PermissionError("The audit log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("The audit log is append-only.")
