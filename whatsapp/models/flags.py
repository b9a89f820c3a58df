"""Analytics events and feature flags (seed 001 events; seed 004 §4 rollout switches).

A flag not yet defined in the database takes its default from DEFAULTS; the percentage rollout
is stable per organization."""

import hashlib

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class AnalyticsEvent(models.Model):
    """Product analytics (seed 001 table), stored first and forwarded when a service is set."""

    class Name(models.TextChoices):
        SETUP_SCREEN_VIEWED = "WhatsApp Setup Screen Viewed", _("WhatsApp setup screen viewed")
        SIGNUP_STARTED = "Embedded Signup Started", _("Embedded Signup started")
        SIGNUP_COMPLETED = "Embedded Signup Completed", _("Embedded Signup completed")
        SIGNUP_FAILED = "Embedded Signup Failed", _("Embedded Signup failed")
        SIGNUP_CANCELLED = "Embedded Signup Cancelled", _("Embedded Signup cancelled")
        DISCONNECTED = "WhatsApp Disconnected", _("WhatsApp disconnected")

    organization = models.ForeignKey(
        "organizations.Organization", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="analytics_events", verbose_name=_("organization"),
    )
    user = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    name = models.CharField(_("event"), max_length=64, choices=Name, db_index=True)
    properties = models.JSONField(_("properties"), default=dict, blank=True)
    # Makes "recorded once" a database fact: e.g. one Completed per onboarding.
    dedupe_key = models.CharField(_("deduplication key"), max_length=200, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    forwarded_at = models.DateTimeField(_("forwarded at"), null=True, blank=True)
    forward_error = models.TextField(_("forwarding error"), blank=True)

    class Meta:
        db_table = "whatsapp_analytics_events"
        ordering = ["-created_at"]
        verbose_name = _("analytics event")
        verbose_name_plural = _("analytics events")

    def __str__(self) -> str:
        return self.get_name_display()


class FeatureFlag(models.Model):
    """A rollout switch (seed 004 §4): kill switch, percentage, per-organization overrides."""

    name = models.SlugField(_("name"), max_length=100, unique=True)
    description = models.CharField(_("description"), max_length=300, blank=True)
    kill_switch = models.BooleanField(
        _("kill switch"), default=False,
        help_text=_("Turns the feature off for everyone, overrides included."),
    )
    rollout_percentage = models.PositiveSmallIntegerField(
        _("rollout percentage"), default=100,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text=_("Share of organizations with the feature on; stable per organization."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        db_table = "whatsapp_feature_flags"
        ordering = ["name"]
        verbose_name = _("feature flag")
        verbose_name_plural = _("feature flags")

    def __str__(self) -> str:
        return self.name


class FeatureFlagOverride(models.Model):
    flag = models.ForeignKey(FeatureFlag, on_delete=models.CASCADE, related_name="overrides",
                             verbose_name=_("feature flag"))
    organization = models.ForeignKey("organizations.Organization", on_delete=models.CASCADE,
                                     related_name="+", verbose_name=_("organization"))
    enabled = models.BooleanField(_("enabled"))

    class Meta:
        db_table = "whatsapp_feature_flag_overrides"
        constraints = [models.UniqueConstraint(fields=["flag", "organization"],
                                               name="uniq_flag_override")]
        verbose_name = _("override")
        verbose_name_plural = _("overrides")

    def __str__(self) -> str:
        return f"{self.flag} · {self.organization}: {_('on') if self.enabled else _('off')}"

SIGNUP_ENABLED = "whatsapp_embedded_signup_enabled"
# v2 = the hosted link with a tracking code (seed 000) as the primary path instead of the
# JS SDK popup. Off by default: Meta's hosted flow does not officially support coexistence.
V2_ONBOARDING = "whatsapp-v2-onboarding"
DEFAULTS = {SIGNUP_ENABLED: True, V2_ONBOARDING: False}


def _bucket(flag: str, organization_id: str) -> int:
    # Stable 0–99 bucket per (flag, organization): a tenant stays in as the percentage grows,
    # and different flags roll out to different tenants first.
    digest = hashlib.sha256(f"{flag}:{organization_id}".encode()).hexdigest()
    return int(digest[:8], 16) % 100


def flag_enabled(name: str, organization) -> bool:
    flag = FeatureFlag.objects.filter(name=name).first()
    if flag is None:
        return DEFAULTS.get(name, True)
    if flag.kill_switch:
        return False
    if organization is None:
        return flag.rollout_percentage >= 100
    override = (FeatureFlagOverride.objects.filter(flag=flag, organization=organization)
                .values_list("enabled", flat=True).first())
    if override is not None:
        return override
    return _bucket(name, str(organization.pk)) < flag.rollout_percentage
