from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Heartbeat(models.Model):
    """Last time a periodic component proved it is alive (e.g. `beat`), kept in the database so
    the readiness check works while Redis is down."""

    name = models.CharField(_("name"), max_length=64, primary_key=True)
    at = models.DateTimeField(_("at"), default=timezone.now)

    class Meta:
        db_table = "ops_heartbeats"
        verbose_name = _("heartbeat")
        verbose_name_plural = _("heartbeats")

    def __str__(self) -> str:
        return f"{self.name} @ {timezone.localtime(self.at):%d/%m/%Y %H:%M:%S}"

    @classmethod
    def beat(cls, name: str) -> None:
        cls.objects.update_or_create(name=name, defaults={"at": timezone.now()})


class AlertState(models.Model):
    """The current state of one alert condition, so each change is reported once, not on
    every evaluation."""

    key = models.CharField(_("alert"), max_length=200, primary_key=True)
    active = models.BooleanField(_("active"), default=False)
    message = models.TextField(_("message"), blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    changed_at = models.DateTimeField(_("changed at"), default=timezone.now)
    evaluated_at = models.DateTimeField(_("evaluated at"), default=timezone.now)

    class Meta:
        db_table = "ops_alert_states"
        ordering = ["-active", "-changed_at"]
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")

    def __str__(self) -> str:
        return f"{self.key} ({_('active') if self.active else _('ok')})"
