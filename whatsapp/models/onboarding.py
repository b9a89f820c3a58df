"""Onboardings: one per Embedded Signup attempt, keyed by its tracking code."""

import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class OnboardingQuerySet(models.QuerySet):
    def expire_due(self, *, now=None) -> int:
        """Marks pending onboardings past their expiry as expired (Redis keys expire by TTL)."""
        return self.filter(status=Onboarding.Status.PENDING,
                           expires_at__lte=now or timezone.now()).update(
            status=Onboarding.Status.EXPIRED)

    def pending_signups(self, *, now=None) -> "OnboardingQuerySet":
        """Signups some organization has started and not finished, still within their TTL."""
        return self.filter(status=Onboarding.Status.PENDING,
                           expires_at__gt=now or timezone.now())


class Onboarding(models.Model):
    """One attempt by an organization to connect WhatsApp (seed 000 §4.1, SPEC §3)."""

    class Variant(models.TextChoices):
        # The rollout arm of `whatsapp-v2-onboarding` when the onboarding started: the popup
        # first (flag off), or the hosted link with a tracking code first (flag on).
        POPUP = "popup", _("Popup (Embedded Signup)")
        HOSTED_LINK = "hosted_link", _("Hosted link")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        COMPLETED = "completed", _("Completed")
        EXPIRED = "expired", _("Expired")
        CANCELLED = "cancelled", _("Cancelled")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        "organizations.Organization", on_delete=models.CASCADE, related_name="onboardings",
        verbose_name=_("organization"),
    )
    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("created by"),
    )
    tracking_code = models.UUIDField(_("tracking code"), unique=True, default=uuid.uuid4)
    status = models.CharField(
        _("status"), max_length=20, choices=Status, default=Status.PENDING, db_index=True
    )
    redirect_path = models.CharField(_("redirect path"), max_length=300)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"), db_index=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    webhook_received_at = models.DateTimeField(_("webhook received at"), null=True, blank=True)
    waba_id = models.CharField(_("WABA id"), max_length=64, blank=True)
    webhook_payload = models.JSONField(_("webhook payload"), null=True, blank=True)
    # What the browser reported (CANCEL step, Meta error) — filled by the callback.
    current_step = models.CharField(_("step"), max_length=64, blank=True)
    error_code = models.CharField(_("error code"), max_length=64, blank=True)
    error_message = models.TextField(_("error message"), blank=True)
    session_id = models.CharField(_("Meta session id"), max_length=128, blank=True)
    # The browser's finish event (FINISH, FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING, …), if any.
    finish_event = models.CharField(_("finish event"), max_length=64, blank=True)
    # Empty for onboardings started before the variant was recorded.
    variant = models.CharField(_("rollout variant"), max_length=16, choices=Variant,
                               blank=True, db_index=True)

    objects = OnboardingQuerySet.as_manager()

    class Meta:
        db_table = "whatsapp_onboarding"
        ordering = ["-created_at"]
        verbose_name = _("onboarding")
        verbose_name_plural = _("onboardings")
        permissions = [
            ("operate_onboarding", _("Can cancel a pending onboarding")),
        ]

    def __str__(self) -> str:
        return f"{self.tracking_code} ({self.get_status_display()})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def effective_status(self) -> str:
        """The status as a reader should see it: a pending row past its expiry is expired."""
        if self.status == self.Status.PENDING and self.is_expired:
            return self.Status.EXPIRED
        return self.status

    def expire_if_due(self, *, save: bool = True) -> bool:
        """A pending row past its expiry becomes expired (the one place expiry is written;
        readers use `effective_status`, the beat task `Onboarding.objects.expire_due()`)."""
        if self.status != self.Status.PENDING or not self.is_expired:
            return False
        self.status = self.Status.EXPIRED
        if save:
            self.save(update_fields=["status"])
        return True
