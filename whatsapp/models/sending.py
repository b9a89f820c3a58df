"""Templates and outbound sends (seed 003 §5–6)."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .connections import Connection
from .numbers import PhoneNumber


class TemplateStatusEvent(models.Model):
    """One `message_template_status_update` (APPROVED, REJECTED, PAUSED…) of a WABA's template."""

    connection = models.ForeignKey(Connection, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="template_events",
                                   verbose_name=_("connection"))
    organization = models.ForeignKey("organizations.Organization", null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+",
                                     verbose_name=_("organization"))
    waba_id = models.CharField(_("WABA id"), max_length=64)
    template_id = models.CharField(_("template id"), max_length=64)
    template_name = models.CharField(_("template"), max_length=512, blank=True)
    language = models.CharField(_("language"), max_length=16, blank=True)
    category = models.CharField(_("category"), max_length=32, blank=True)
    event = models.CharField(_("event"), max_length=32)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    # rejection_info / disable_info / other_info as Meta sent them.
    info = models.JSONField(_("details"), default=dict, blank=True)
    event_at = models.DateTimeField(_("event time"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        db_table = "whatsapp_template_events"
        ordering = ["-event_at"]
        constraints = [
            models.UniqueConstraint(fields=["waba_id", "template_id", "event", "event_at"],
                                    name="uniq_template_event"),
        ]
        verbose_name = _("template status event")
        verbose_name_plural = _("template status events")

    def __str__(self) -> str:
        return f"{self.template_name} ({self.language})"


class MessageTemplate(models.Model):
    """An approved-or-not template of a WABA, as last synced or reported by Meta.

    Kept current by `templates_sync` (the WABA listing) and by Meta's template webhooks
    (whatsapp/sending/template_events.py: status, category, quality). `use` maps it to what
    the product sends with it (confirmacao, lembrete, …), one template per use and
    organization.
    """

    SENDABLE = ("APPROVED",)

    organization = models.ForeignKey(
        "organizations.Organization", null=True, blank=True, on_delete=models.CASCADE,
        related_name="whatsapp_templates", verbose_name=_("organization"),
    )
    connection = models.ForeignKey(Connection, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="templates", verbose_name=_("connection"))
    waba_id = models.CharField(_("WABA id"), max_length=64)
    template_id = models.CharField(_("template id"), max_length=64, blank=True, db_index=True)
    name = models.CharField(_("name"), max_length=512)
    language = models.CharField(_("language"), max_length=16)
    category = models.CharField(_("category"), max_length=32, blank=True)
    status = models.CharField(_("status"), max_length=32, blank=True)
    # When the status was true at Meta: an older event never overwrites a newer one.
    status_at = models.DateTimeField(_("status at"), null=True, blank=True)
    status_reason = models.CharField(_("status reason"), max_length=255, blank=True)
    components = models.JSONField(_("components"), default=list, blank=True)
    # POSITIONAL ({{1}}) or NAMED ({{first_name}}): how a send passes its parameters.
    parameter_format = models.CharField(_("parameter format"), max_length=16, blank=True)
    # template_category_update: Meta re-categorised the template (e.g. UTILITY → MARKETING,
    # which costs more). Automation does not send it until a person confirms the new category.
    previous_category = models.CharField(_("previous category"), max_length=32, blank=True)
    category_changed_at = models.DateTimeField(_("category changed at"), null=True, blank=True)
    category_confirmation_required = models.BooleanField(
        _("new category awaiting confirmation"), default=False)
    category_confirmed_at = models.DateTimeField(_("new category confirmed at"), null=True,
                                                 blank=True)
    category_confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", verbose_name=_("new category confirmed by"))
    # An announced change (correct_category / new_category / category_update_timestamp).
    upcoming_category = models.CharField(_("upcoming category"), max_length=32, blank=True)
    upcoming_category_at = models.DateTimeField(_("upcoming category from"), null=True,
                                                blank=True)
    # message_template_quality_update: GREEN, YELLOW, RED or UNKNOWN.
    quality_score = models.CharField(_("quality score"), max_length=16, blank=True)
    quality_score_at = models.DateTimeField(_("quality score at"), null=True, blank=True)
    body_parameter_count = models.PositiveSmallIntegerField(_("body parameters"), default=0)
    header_parameter_count = models.PositiveSmallIntegerField(_("header parameters"), default=0)
    use = models.SlugField(
        _("use"), max_length=64, blank=True,
        help_text=_("What the product sends with it, e.g. confirmacao, lembrete, cancelamento, "
                    "lead_followup."),
    )
    synced_at = models.DateTimeField(_("synced at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        db_table = "whatsapp_message_templates"
        ordering = ["name", "language"]
        constraints = [
            models.UniqueConstraint(fields=["waba_id", "name", "language"],
                                    name="uniq_template_per_waba"),
            models.UniqueConstraint(fields=["organization", "use"], condition=~Q(use=""),
                                    name="uniq_template_use_per_org"),
        ]
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        permissions = [("confirm_template_category",
                        _("Can confirm a template's new category for automated sends"))]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"

    @property
    def is_sendable(self) -> bool:
        return self.status in self.SENDABLE

    @property
    def is_named(self) -> bool:
        return self.parameter_format.upper() == "NAMED"


class SendMode(models.TextChoices):
    DISABLED = "disabled", _("Disabled")
    DRY_RUN = "dry_run", _("Dry run (never calls Meta)")
    ENABLED = "enabled", _("Enabled")


class SendPolicy(models.Model):
    """An organization's sending switch and test allowlist (no row = dry run, no allowlist).

    The effective mode is the stricter of this and the global WHATSAPP_SEND_MODE, so one
    tenant's switch can never turn sending on where the environment keeps it off.
    """

    organization = models.OneToOneField(
        "organizations.Organization", on_delete=models.CASCADE, related_name="whatsapp_send_policy",
        verbose_name=_("organization"),
    )
    mode = models.CharField(_("mode"), max_length=16, choices=SendMode, default=SendMode.DRY_RUN)
    allowlist = models.JSONField(
        _("recipient allowlist"), default=list, blank=True,
        help_text=_("Phone numbers (digits) that may receive messages; empty = anyone."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        db_table = "whatsapp_send_policies"
        verbose_name = _("sending policy")
        verbose_name_plural = _("sending policies")

    def __str__(self) -> str:
        return f"{self.organization}: {self.get_mode_display()}"


class OutboundMessage(models.Model):
    """One message the product asked to send: the queue row and its audit record."""

    class Kind(models.TextChoices):
        TEMPLATE = "template", _("Template")
        TEXT = "text", _("Free-form text")
        # Meta's contact-information request: asks a username-only lead for the phone number.
        REQUEST_CONTACT_INFO = "request_contact_info", _("Phone number request")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        DRY_RUN = "dry_run", _("Dry run (not sent)")
        ACCEPTED = "accepted", _("Accepted by Meta")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        READ = "read", _("Read")
        FAILED = "failed", _("Failed")
        # The outcome of a Graph call is unknown (timeout): statuses may still resolve it.
        UNKNOWN = "unknown", _("Outcome unknown")
        BLOCKED = "blocked", _("Blocked by a sending rule")
        CANCELLED = "cancelled", _("Cancelled (sending turned off)")

    class Actor(models.TextChoices):
        USER = "user", _("User")
        API_TOKEN = "api_token", _("API token")
        SYSTEM = "system", _("System")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        "organizations.Organization", on_delete=models.CASCADE, related_name="outbound_messages",
        verbose_name=_("organization"),
    )
    config = models.ForeignKey(
        PhoneNumber,
        on_delete=models.PROTECT,
        related_name="outbound_messages",
        verbose_name=_("phone number"),
    )
    contact = models.ForeignKey(
        "Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="outbound_messages",
        verbose_name=_("contact"),
    )
    to = models.CharField(_("recipient"), max_length=32, blank=True)
    # A username-only lead: its BSUID goes in Graph's `recipient` instead of `to`.
    recipient_user_id = models.CharField(_("recipient user id"), max_length=160, blank=True)
    kind = models.CharField(_("kind"), max_length=24, choices=Kind)
    template = models.ForeignKey(
        MessageTemplate,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("template"),
    )
    template_name = models.CharField(_("template"), max_length=512, blank=True)
    template_language = models.CharField(_("language"), max_length=16, blank=True)
    use = models.CharField(_("use"), max_length=64, blank=True)
    parameters = models.JSONField(_("parameters"), default=dict, blank=True)
    text = models.TextField(_("text"), blank=True)
    # Automated (assistant, reminders) vs. a person pressing send in the product.
    automated = models.BooleanField(_("automated"), default=False)
    idempotency_key = models.CharField(_("idempotency key"), max_length=255, blank=True)
    request_hash = models.CharField(max_length=64, blank=True, editable=False)
    status = models.CharField(
        _("status"), max_length=16, choices=Status, default=Status.QUEUED, db_index=True
    )
    status_reason = models.TextField(_("reason"), blank=True)
    # Who queued it.
    actor = models.CharField(_("queued by"), max_length=16, choices=Actor, default=Actor.SYSTEM)
    queued_by_user = models.ForeignKey(
        "auth.User",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("user"),
    )
    queued_by_token = models.ForeignKey(
        "organizations.ApiToken",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("API token"),
    )
    # The exact Graph request body (or what it would have been, in dry run).
    payload = models.JSONField(_("request body"), null=True, blank=True)
    response = models.JSONField(_("Meta response"), null=True, blank=True)
    wamid = models.CharField(
        _("WhatsApp message id"), max_length=255, null=True, blank=True, unique=True
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True, editable=False)
    error_code = models.IntegerField(_("error code"), null=True, blank=True)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    # When the pacer let the Graph call go (Redis time): the throughput audit.
    graph_called_at = models.DateTimeField(_("sent to Meta at"), null=True, blank=True)
    accepted_at = models.DateTimeField(_("accepted at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)
    failed_at = models.DateTimeField(_("failed at"), null=True, blank=True)
    # Meta's per-message pricing, from the statuses that carry it (a delivered status's word
    # replaces a sent one's); one row per message, so a message is counted once.
    pricing_billable = models.BooleanField(_("billable"), null=True, blank=True)
    pricing_model = models.CharField(_("pricing model"), max_length=16, blank=True)
    pricing_category = models.CharField(_("pricing category"), max_length=32, blank=True)
    pricing_type = models.CharField(_("pricing type"), max_length=32, blank=True)
    # Meta's time of the first status that carried pricing: the month the message counts in.
    priced_at = models.DateTimeField(_("priced at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        db_table = "whatsapp_outbound_messages"
        ordering = ["-created_at"]
        constraints = [
            # A retried request with the same key never queues a second message.
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="uniq_outbound_idempotency_key",
            ),
        ]
        indexes = [
            # The sweeper looks only at rows still waiting to be sent.
            models.Index(
                fields=["status", "next_attempt_at"],
                name="outbound_pending_idx",
                condition=Q(status__in=["queued", "sending"]),
            ),
            # A number's drain (sending/batch.py) claims its oldest waiting sends.
            models.Index(
                fields=["config", "created_at"],
                name="outbound_drain_idx",
                condition=Q(status__in=["queued", "sending"]),
            ),
            # The monthly usage report: priced messages of a number in a month.
            models.Index(fields=["config", "priced_at"], name="outbound_priced_idx",
                         condition=Q(priced_at__isnull=False)),
        ]
        verbose_name = _("outbound message")
        verbose_name_plural = _("outbound messages")

    def __str__(self) -> str:
        return (f"{self.get_kind_display()} → {self.to or self.recipient_user_id} "
                f"({self.get_status_display()})")

    @property
    def callback_data(self) -> str:
        """biz_opaque_callback_data: Meta echoes it on every status of this send."""
        return f"qlk:{self.pk}"


class OutboundEvent(models.Model):
    """One step in an outbound message's life (queued, attempt, retry, dry run, status…)."""

    message = models.ForeignKey(
        OutboundMessage,
        on_delete=models.CASCADE,
        related_name="events",
        verbose_name=_("outbound message"),
    )
    event = models.CharField(_("event"), max_length=32)
    at = models.DateTimeField(_("time"), default=timezone.now)
    detail = models.JSONField(_("details"), default=dict, blank=True)

    class Meta:
        db_table = "whatsapp_outbound_events"
        ordering = ["at", "id"]
        verbose_name = _("outbound message event")
        verbose_name_plural = _("outbound message events")

    def __str__(self) -> str:
        return f"{timezone.localtime(self.at):%d/%m/%Y %H:%M:%S}"


class NumberUsage(PhoneNumber):
    """A phone number seen through its month's priced messages (the admin's usage report)."""

    class Meta:
        proxy = True
        verbose_name = _("usage by number")
        verbose_name_plural = _("usage by number")
