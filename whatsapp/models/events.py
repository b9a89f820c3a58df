"""Lead events: the transactional outbox the assistant reads (whatsapp.events)."""

import uuid

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class LeadEventQuerySet(models.QuerySet):
    def replayable(self) -> "LeadEventQuerySet":
        return self.filter(delivery=LeadEvent.Delivery.DEAD)


class LeadEvent(models.Model):
    """One fact about a lead, written in the transaction of the fact itself.

    `stream` is the conversation it belongs to (`contact:<id>`, or `connection:<id>` for a
    connection's state) and `sequence` its place there (1, 2, 3… per stream). Over HTTP an event
    goes out only after every earlier event of its stream was acknowledged.
    """

    class Delivery(models.TextChoices):
        NONE = "none", _("Not sent (no LEAD_EVENTS_URL)")
        PENDING = "pending", _("Pending")
        DELIVERED = "delivered", _("Delivered")
        DEAD = "dead", _("Dead (retries exhausted)")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("organizations.Organization", on_delete=models.CASCADE,
                                     related_name="+", verbose_name=_("organization"))
    type = models.CharField(_("type"), max_length=48)
    stream = models.CharField(_("conversation"), max_length=64)
    sequence = models.PositiveBigIntegerField(_("sequence"))
    contact = models.ForeignKey("Contact", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+", verbose_name=_("contact"))
    data = models.JSONField(_("data"), default=dict)
    occurred_at = models.DateTimeField(_("occurred at"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    delivery = models.CharField(_("delivery"), max_length=16, choices=Delivery,
                                default=Delivery.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    # In-process subscribers' Celery tasks were published (whatsapp.events.subscribers).
    fanned_out = models.BooleanField(_("handed to subscribers"), default=False)

    objects = LeadEventQuerySet.as_manager()

    class Meta:
        db_table = "whatsapp_lead_events"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["stream", "sequence"], name="uniq_lead_event_seq"),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="lead_event_due_idx",
                         condition=Q(delivery="pending")),
            models.Index(fields=["created_at"], name="lead_event_fanout_idx",
                         condition=Q(fanned_out=False)),
        ]
        verbose_name = _("lead event")
        verbose_name_plural = _("lead events")
        permissions = [("replay_leadevent", _("Can replay lead events"))]

    def __str__(self) -> str:
        return f"{self.type} · {self.stream} #{self.sequence}"


class LeadEventStream(models.Model):
    """The last sequence number given in one stream (an upsert hands out the next ones)."""

    key = models.CharField(max_length=64, primary_key=True)
    last_sequence = models.PositiveBigIntegerField(default=0)

    class Meta:
        db_table = "whatsapp_lead_event_streams"
        verbose_name = _("lead event stream")
        verbose_name_plural = _("lead event streams")

    def __str__(self) -> str:
        return f"{self.key} #{self.last_sequence}"
