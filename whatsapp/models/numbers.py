"""Phone numbers of a connection (seed table `whatsapp_configs`)."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from whatsapp.core import crypto

from .connections import Connection


class PhoneNumberQuerySet(models.QuerySet):
    def sync_failed(self) -> "PhoneNumberQuerySet":
        """Numbers whose contacts or history sync Meta refused."""
        failed = PhoneNumber.SyncStatus.FAILED
        return self.filter(Q(contacts_sync_status=failed) | Q(history_sync_status=failed))


class PhoneNumber(models.Model):
    """One phone number of a connection (seed table `whatsapp_configs`)."""

    class Status(models.TextChoices):
        # Listed by Meta but not chosen (a WABA with several numbers waits for the admin).
        PENDING = "pending", _("Pending")
        CONFIGURING = "configuring", _("Configuring")
        CONFIGURED = "configured", _("Configured")
        DISABLED = "disabled", _("Disabled")
        ERROR = "error", _("Error")

    class RegistrationStatus(models.TextChoices):
        NOT_NEEDED = "not_needed", _("Not needed (coexistence)")
        PENDING = "pending", _("Pending")
        REGISTERED = "registered", _("Registered")
        FAILED = "failed", _("Failed")
        BLOCKED = "blocked", _("Blocked by Meta (133016)")

    class SyncStatus(models.TextChoices):
        NOT_NEEDED = "not_needed", _("Not needed")
        PENDING = "pending", _("Pending")
        REQUESTING = "requesting", _("Requesting")
        REQUESTED = "requested", _("Requested")
        UNKNOWN = "unknown", _("Outcome unknown (support)")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("24 h window missed")

    connection = models.ForeignKey(
        Connection,
        on_delete=models.CASCADE,
        related_name="phone_numbers",
        verbose_name=_("connection"),
    )
    organization = models.ForeignKey(
        "organizations.Organization",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="whatsapp_configs",
        verbose_name=_("organization"),
    )
    phone_number_id = models.CharField(_("phone number id"), max_length=64, unique=True)
    # The number's own WhatsApp Business Account (account model phase 2, META-PLATFORM.md §0),
    # learnt from Meta only (Graph's number listing, a signed delivery's metadata). Once known,
    # a delivery naming another WAAC for this number is not routed here.
    waac_id = models.CharField(_("WhatsApp Business Account (WAAC) id"), max_length=64,
                               blank=True)
    display_phone_number = models.CharField(_("display number"), max_length=32, blank=True)
    verified_name = models.CharField(_("verified name"), max_length=200, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=Status, default=Status.PENDING)
    quality_rating = models.CharField(_("quality rating"), max_length=16, blank=True)
    platform_type = models.CharField(_("platform type"), max_length=32, blank=True)
    code_verification_status = models.CharField(
        _("code verification status"), max_length=32, blank=True)
    is_on_biz_app = models.BooleanField(_("WhatsApp Business app (coexistence)"), default=False)
    registration_pin_encrypted = models.TextField(blank=True, editable=False)
    registration_status = models.CharField(
        _("registration"),
        max_length=16,
        choices=RegistrationStatus,
        default=RegistrationStatus.NOT_NEEDED,
    )
    registration_attempts = models.PositiveSmallIntegerField(_("registration attempts"), default=0)
    registration_error = models.TextField(_("registration error"), blank=True)
    registered_at = models.DateTimeField(_("registered at"), null=True, blank=True)
    # Coexistence sync (smb_app_data): each sync type may be requested only once per onboarding.
    contacts_sync_status = models.CharField(
        _("contacts sync"), max_length=16, choices=SyncStatus, default=SyncStatus.NOT_NEEDED
    )
    contacts_sync_request_id = models.CharField(
        _("contacts sync request id"), max_length=128, blank=True)
    contacts_sync_requested_at = models.DateTimeField(
        _("contacts sync requested at"), null=True, blank=True)
    history_sync_status = models.CharField(
        _("history sync"), max_length=16, choices=SyncStatus, default=SyncStatus.NOT_NEEDED
    )
    history_sync_request_id = models.CharField(
        _("history sync request id"), max_length=128, blank=True)
    history_sync_requested_at = models.DateTimeField(
        _("history sync requested at"), null=True, blank=True)
    sync_error = models.TextField(_("sync error"), blank=True)
    # Kept current by webhook ingestion (whatsapp/ingestion.py).
    messages_in_count = models.PositiveBigIntegerField(_("messages received"), default=0)
    messages_out_count = models.PositiveBigIntegerField(_("messages sent"), default=0)
    last_message_at = models.DateTimeField(_("last message at"), null=True, blank=True)
    # The business portfolio's messaging limit (TIER_250 … TIER_UNLIMITED): one value shared by
    # every number of the portfolio, copied onto each; from Graph or phone_number_quality_update.
    messaging_limit = models.CharField(_("messaging limit"), max_length=32, blank=True)
    messaging_limit_at = models.DateTimeField(_("messaging limit as of"), null=True, blank=True)
    quality_event = models.CharField(_("last quality event"), max_length=32, blank=True)
    quality_event_at = models.DateTimeField(_("last quality event at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = PhoneNumberQuerySet.as_manager()

    class Meta:
        db_table = "whatsapp_configs"
        ordering = ["display_phone_number"]
        verbose_name = _("phone number")
        verbose_name_plural = _("phone numbers")

    def __str__(self) -> str:
        return self.display_phone_number or self.phone_number_id

    def reset_for_new_connection(self) -> None:
        """Forgets the setup done under a previous (disconnected) connection."""
        S, R = PhoneNumber.SyncStatus, PhoneNumber.RegistrationStatus
        PhoneNumber.objects.filter(pk=self.pk).update(
            status=PhoneNumber.Status.PENDING,
            registration_status=R.NOT_NEEDED,
            registration_attempts=0,
            registration_error="",
            registered_at=None,
            registration_pin_encrypted="",
            contacts_sync_status=S.NOT_NEEDED,
            contacts_sync_request_id="",
            contacts_sync_requested_at=None,
            history_sync_status=S.NOT_NEEDED,
            history_sync_request_id="",
            history_sync_requested_at=None,
            sync_error="",
        )

    def set_pin(self, pin: str) -> None:
        self.registration_pin_encrypted = crypto.encrypt(pin)

    def get_pin(self) -> str:
        stored = self.registration_pin_encrypted
        return crypto.decrypt(stored) if stored else ""
