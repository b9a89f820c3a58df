import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connections, models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import crypto


class Onboarding(models.Model):
    """One attempt by an organization to connect WhatsApp (seed 000 §4.1, SPEC §3)."""

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

    class Meta:
        db_table = "whatsapp_onboarding"
        ordering = ["-created_at"]
        verbose_name = _("onboarding")
        verbose_name_plural = _("onboardings")

    def __str__(self) -> str:
        return f"{self.tracking_code} ({self.status})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def effective_status(self) -> str:
        """The status as a reader should see it: a pending row past its expiry is expired."""
        if self.status == self.Status.PENDING and self.is_expired:
            return self.Status.EXPIRED
        return self.status


class AnalyticsEvent(models.Model):
    """Product analytics (seed 001 table), stored first and forwarded when a service is set."""

    class Name(models.TextChoices):
        SETUP_SCREEN_VIEWED = "WhatsApp Setup Screen Viewed"
        SIGNUP_STARTED = "Embedded Signup Started"
        SIGNUP_COMPLETED = "Embedded Signup Completed"
        SIGNUP_FAILED = "Embedded Signup Failed"
        SIGNUP_CANCELLED = "Embedded Signup Cancelled"
        DISCONNECTED = "WhatsApp Disconnected"

    organization = models.ForeignKey(
        "organizations.Organization", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="analytics_events", verbose_name=_("organization"),
    )
    user = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    name = models.CharField(_("event"), max_length=64, choices=Name, db_index=True)
    properties = models.JSONField(_("properties"), default=dict, blank=True)
    # Makes "recorded once" a database fact: e.g. one Completed per onboarding.
    dedupe_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    forwarded_at = models.DateTimeField(_("forwarded at"), null=True, blank=True)
    forward_error = models.TextField(blank=True)

    class Meta:
        db_table = "whatsapp_analytics_events"
        ordering = ["-created_at"]
        verbose_name = _("analytics event")
        verbose_name_plural = _("analytics events")

    def __str__(self) -> str:
        return self.name


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
        return f"{self.flag} · {self.organization}: {self.enabled}"


class ConnectionQuerySet(models.QuerySet):
    def active(self) -> "ConnectionQuerySet":
        return self.exclude(status=Connection.Status.DISCONNECTED)

    def orphans(self) -> "ConnectionQuerySet":
        return self.active().filter(organization__isnull=True)

    def touch(self, now=None) -> int:
        """Records webhook activity, at most once a minute per connection: busy numbers would
        otherwise write the same row on every delivery."""
        now = now or timezone.now()
        return self.filter(
            Q(last_webhook_at__isnull=True) | Q(last_webhook_at__lte=now - Connection.TOUCH_EVERY)
        ).update(last_webhook_at=now)


class Connection(models.Model):
    """A customer's WABA shared with our app; `organization` is empty while it is an orphan."""

    TOUCH_EVERY = timedelta(minutes=1)

    class Status(models.TextChoices):
        CONNECTING = "connecting", _("Connecting")
        AWAITING_PHONE_SELECTION = "awaiting_phone_selection", _("Awaiting phone selection")
        CONNECTED = "connected", _("Connected")
        DISCONNECTED = "disconnected", _("Disconnected")
        ERROR = "error", _("Error")

    class TokenStatus(models.TextChoices):
        MISSING = "missing", _("Missing")
        VALID = "valid", _("Valid")
        INVALID = "invalid", _("Invalid")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        "organizations.Organization", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="whatsapp_connections", verbose_name=_("organization"),
    )
    waba_id = models.CharField(_("WABA id"), max_length=64, db_index=True)
    owner_business_id = models.CharField(_("owner business id"), max_length=64, blank=True,
                                         db_index=True)
    # entry.id of PARTNER_ADDED: our own (partner) business portfolio, never the WABA.
    partner_business_id = models.CharField(_("partner business id"), max_length=64, blank=True)
    status = models.CharField(_("status"), max_length=32, choices=Status,
                              default=Status.CONNECTING, db_index=True)
    onboarding = models.ForeignKey(
        Onboarding, null=True, blank=True, on_delete=models.SET_NULL, related_name="connections",
        verbose_name=_("onboarding"),
    )
    tracking_code_used = models.UUIDField(_("tracking code used"), null=True, blank=True)
    # How the organization was resolved: tracking_code, browser_callback, waba, owner_business,
    # claim. Empty for orphans.
    attributed_by = models.CharField(_("attributed by"), max_length=32, blank=True)
    business_name = models.CharField(_("business name"), max_length=200, blank=True)
    is_coexistence = models.BooleanField(_("coexistence"), null=True, blank=True)
    access_token_encrypted = models.TextField(blank=True, editable=False)
    token_status = models.CharField(_("token status"), max_length=16, choices=TokenStatus,
                                    default=TokenStatus.MISSING)
    token_expires_at = models.DateTimeField(_("token expires at"), null=True, blank=True)
    token_checked_at = models.DateTimeField(_("token checked at"), null=True, blank=True)
    # Where the token came from: the popup's code exchange, or Hosted ES (system user fetch).
    token_source = models.CharField(_("token source"), max_length=32, blank=True)
    finish_event = models.CharField(_("finish event"), max_length=64, blank=True)
    # The number the browser reported (FINISH carries phone_number_id); chosen automatically.
    requested_phone_number_id = models.CharField(max_length=64, blank=True)
    subscribed_at = models.DateTimeField(_("app subscribed at"), null=True, blank=True)
    # The onboarding pipeline's progress (see whatsapp/pipeline.py): last step reached, its
    # error for support, and a lease so two runs never work on one connection at once.
    pipeline_step = models.CharField(_("pipeline step"), max_length=32, blank=True)
    pipeline_error = models.TextField(_("pipeline error"), blank=True)
    pipeline_locked_until = models.DateTimeField(null=True, blank=True, editable=False)
    error_message = models.TextField(_("error message"), blank=True)
    connected_at = models.DateTimeField(_("connected at"), null=True, blank=True)
    disconnected_at = models.DateTimeField(_("disconnected at"), null=True, blank=True)
    disconnect_reason = models.CharField(_("disconnect reason"), max_length=200, blank=True)
    last_webhook_at = models.DateTimeField(_("last webhook at"), null=True, blank=True)
    # The PARTNER_ADDED delivery that created this row, for support (orphans especially).
    source_event = models.JSONField(_("source event"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        db_table = "whatsapp_connections"
        ordering = ["-created_at"]
        constraints = [
            # A WABA belongs to at most one live connection; disconnected rows are history.
            models.UniqueConstraint(
                fields=["waba_id"], condition=~Q(status="disconnected"),
                name="uniq_live_connection_per_waba",
            ),
        ]
        verbose_name = _("connection")
        verbose_name_plural = _("connections")
        permissions = [
            ("claim_orphan", _("Can claim an orphan WABA for an organization")),
            ("operate_connection", _("Can re-run token health and the pipeline, and disconnect")),
        ]

    def __str__(self) -> str:
        return f"WABA {self.waba_id} ({self.status})"

    @property
    def is_orphan(self) -> bool:
        return self.organization_id is None and self.status != self.Status.DISCONNECTED

    def set_access_token(self, raw: str) -> None:
        self.access_token_encrypted = crypto.encrypt(raw)
        self.token_status = self.TokenStatus.VALID

    def get_access_token(self) -> str:
        return crypto.decrypt(self.access_token_encrypted) if self.access_token_encrypted else ""

    def wipe_credentials(self) -> None:
        self.access_token_encrypted = ""
        self.token_status = self.TokenStatus.MISSING
        self.token_expires_at = None


class OrphanManager(models.Manager):
    def get_queryset(self):
        return ConnectionQuerySet(self.model, using=self._db).orphans()


class OrphanConnection(Connection):
    """The back-office view of connections that no organization could be matched to."""

    objects = OrphanManager()

    class Meta:
        proxy = True
        verbose_name = _("orphan WABA")
        verbose_name_plural = _("orphan WABAs")


class Config(models.Model):
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

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="configs",
                                   verbose_name=_("connection"))
    organization = models.ForeignKey(
        "organizations.Organization", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="whatsapp_configs", verbose_name=_("organization"),
    )
    phone_number_id = models.CharField(_("phone number id"), max_length=64, unique=True)
    display_phone_number = models.CharField(_("display number"), max_length=32, blank=True)
    verified_name = models.CharField(_("verified name"), max_length=200, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=Status, default=Status.PENDING)
    quality_rating = models.CharField(_("quality rating"), max_length=16, blank=True)
    platform_type = models.CharField(_("platform type"), max_length=32, blank=True)
    code_verification_status = models.CharField(max_length=32, blank=True)
    is_on_biz_app = models.BooleanField(_("WhatsApp Business app (coexistence)"), default=False)
    registration_pin_encrypted = models.TextField(blank=True, editable=False)
    registration_status = models.CharField(
        _("registration"), max_length=16, choices=RegistrationStatus,
        default=RegistrationStatus.NOT_NEEDED,
    )
    registration_attempts = models.PositiveSmallIntegerField(_("registration attempts"), default=0)
    registration_error = models.TextField(_("registration error"), blank=True)
    registered_at = models.DateTimeField(_("registered at"), null=True, blank=True)
    # Coexistence sync (smb_app_data): each sync type may be requested only once per onboarding.
    contacts_sync_status = models.CharField(_("contacts sync"), max_length=16,
                                            choices=SyncStatus, default=SyncStatus.NOT_NEEDED)
    contacts_sync_request_id = models.CharField(max_length=128, blank=True)
    contacts_sync_requested_at = models.DateTimeField(null=True, blank=True)
    history_sync_status = models.CharField(_("history sync"), max_length=16,
                                           choices=SyncStatus, default=SyncStatus.NOT_NEEDED)
    history_sync_request_id = models.CharField(max_length=128, blank=True)
    history_sync_requested_at = models.DateTimeField(null=True, blank=True)
    sync_error = models.TextField(_("sync error"), blank=True)
    # Kept current by webhook ingestion (whatsapp/ingestion.py).
    messages_in_count = models.PositiveBigIntegerField(_("messages received"), default=0)
    messages_out_count = models.PositiveBigIntegerField(_("messages sent"), default=0)
    last_message_at = models.DateTimeField(_("last message at"), null=True, blank=True)
    messaging_limit = models.CharField(_("messaging limit"), max_length=32, blank=True)
    quality_event = models.CharField(_("last quality event"), max_length=32, blank=True)
    quality_event_at = models.DateTimeField(_("last quality event at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        db_table = "whatsapp_configs"
        ordering = ["display_phone_number"]
        verbose_name = _("phone number")
        verbose_name_plural = _("phone numbers")

    def __str__(self) -> str:
        return self.display_phone_number or self.phone_number_id

    def reset_for_new_connection(self) -> None:
        """Forgets the setup done under a previous (disconnected) connection."""
        S, R = Config.SyncStatus, Config.RegistrationStatus
        Config.objects.filter(pk=self.pk).update(
            status=Config.Status.PENDING, registration_status=R.NOT_NEEDED,
            registration_attempts=0, registration_error="", registered_at=None,
            registration_pin_encrypted="", contacts_sync_status=S.NOT_NEEDED,
            contacts_sync_request_id="", contacts_sync_requested_at=None,
            history_sync_status=S.NOT_NEEDED, history_sync_request_id="",
            history_sync_requested_at=None, sync_error="",
        )

    def set_pin(self, pin: str) -> None:
        self.registration_pin_encrypted = crypto.encrypt(pin)

    def get_pin(self) -> str:
        stored = self.registration_pin_encrypted
        return crypto.decrypt(stored) if stored else ""


class Message(models.Model):
    """One WhatsApp message, stored once per wamid with the raw webhook item."""

    class Direction(models.TextChoices):
        INBOUND = "inbound", _("Inbound")
        OUTBOUND = "outbound", _("Outbound")

    class Source(models.TextChoices):
        CLOUD_API = "cloud_api", _("Cloud API")
        PHONE_APP = "phone_app", _("Sent from the phone app")
        HISTORY = "history", _("History sync")

    organization = models.ForeignKey(
        "organizations.Organization", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="whatsapp_messages",
    )
    config = models.ForeignKey(Config, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="messages")
    wamid = models.CharField(max_length=255, unique=True)
    direction = models.CharField(max_length=10, choices=Direction)
    # cloud_api, phone_app (smb echo) or history.
    source = models.CharField(max_length=20, default="cloud_api")
    type = models.CharField(max_length=32)
    timestamp = models.DateTimeField()
    status = models.CharField(max_length=16, blank=True)
    raw = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    # Filled by webhook ingestion (whatsapp/ingestion.py).
    contact = models.ForeignKey("Contact", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="messages", verbose_name=_("contact"))
    body = models.TextField(_("text"), blank=True)
    media_id = models.CharField(_("media id"), max_length=128, blank=True)
    # The message this one replies to (context.id).
    reply_to_wamid = models.CharField(_("reply to"), max_length=255, blank=True)
    # The message an edit, revoke or reaction is about; indexed so a late original finds them.
    target_wamid = models.CharField(_("target message"), max_length=255, blank=True,
                                    db_index=True)
    referral = models.JSONField(_("ad referral"), null=True, blank=True)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    status_at = models.DateTimeField(_("status at"), null=True, blank=True)
    edited_at = models.DateTimeField(_("edited at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        db_table = "whatsapp_messages"
        ordering = ["-timestamp"]
        verbose_name = _("message")
        verbose_name_plural = _("messages")

    def __str__(self) -> str:
        return self.wamid


class WebhookLogQuerySet(models.QuerySet):
    def due(self, *, now=None, stale_after: timedelta = timedelta(minutes=1)):
        """Rows the sweeper should (re-)enqueue: never enqueued, retry due, or lease expired."""
        now = now or timezone.now()
        S = WebhookLog.Status
        return self.filter(
            Q(status=S.RECEIVED, received_at__lte=now - stale_after)
            | Q(status=S.FAILED, next_attempt_at__lte=now)
            | Q(status=S.PROCESSING, locked_until__lte=now)
        )


class WebhookLog(models.Model):
    """Every signed delivery from Meta, byte for byte, stored before it is acknowledged."""

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        PROCESSING = "processing", _("Processing")
        PROCESSED = "processed", _("Processed")
        FAILED = "failed", _("Failed (will retry)")
        DEAD = "dead", _("Dead")
        # Waiting for its phone number to be configured (webhooks_unpark re-queues it).
        PARKED = "parked", _("Parked (number not configured)")

    id = models.BigAutoField(primary_key=True)
    received_at = models.DateTimeField(_("received at"), default=timezone.now, db_index=True)
    raw_body = models.BinaryField(_("raw body"))
    # Not indexed: every index is paid on the INSERT Meta waits for; support searches by it
    # rarely (exact match in the admin).
    body_sha256 = models.CharField(max_length=64)
    headers = models.JSONField(_("headers"), default=dict)
    signature_valid = models.BooleanField(_("signature valid"), default=True)
    # The processing columns below also have database defaults (db_default): the webhook's
    # INSERT (webhooks.webhook_store) sends only the columns above.
    # Filled while processing: the change fields in the delivery and the tenant, when known.
    fields = models.JSONField(_("fields"), default=list, db_default=[], blank=True)
    organization = models.ForeignKey(
        "organizations.Organization", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="webhook_logs", verbose_name=_("organization"),
    )
    status = models.CharField(_("status"), max_length=16, choices=Status,
                              default=Status.RECEIVED, db_default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(_("attempts"), default=0, db_default=0)
    last_error = models.TextField(_("last error"), blank=True, default="", db_default="")
    traceback = models.TextField(blank=True, default="", db_default="")
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    parked_phone_number_id = models.CharField(_("parked for phone number id"), max_length=64,
                                              blank=True, default="", db_default="")

    objects = WebhookLogQuerySet.as_manager()

    class Meta:
        db_table = "whatsapp_webhook_logs"
        ordering = ["-received_at", "-id"]
        indexes = [
            # The sweeper and the dashboards only look at rows that still need work.
            models.Index(
                fields=["status", "next_attempt_at"], name="webhook_unfinished_idx",
                condition=~Q(status="processed"),
            ),
            # webhooks_unpark: only parked rows, so a new delivery's INSERT never touches it.
            models.Index(
                fields=["parked_phone_number_id"], name="webhook_parked_idx",
                condition=Q(status="parked"),
            ),
        ]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        permissions = [("replay_webhooklog", _("Can replay webhook deliveries"))]

    def __str__(self) -> str:
        return f"#{self.pk} {self.status}"

    def claim(self, *, lease: timedelta) -> bool:
        """Takes this row for processing; False if someone else holds it or it is finished."""
        claimed = WebhookLog.claim_id(self.pk, lease=lease, using=self._state.db or "default")
        if claimed is None:
            return False
        self.status, self.locked_until, self.attempts = (claimed.status, claimed.locked_until,
                                                         claimed.attempts)
        return True

    @classmethod
    def claim_id(cls, pk: int, *, lease: timedelta, using: str = "default"):
        """Takes row `pk` for processing and returns it, body included; None when someone else
        holds it, it is finished, or it was abandoned after its last attempt (the caller
        buries those).

        One conditional `UPDATE … RETURNING *`: the ORM would need an UPDATE and a SELECT, and
        this runs once per delivery on the hot path. Attempts are counted here, before any
        work, so a payload that kills the worker still uses one up.
        """
        now = timezone.now()
        S = cls.Status
        when = connections[using].ops.adapt_datetimefield_value
        claimed = list(cls.objects.using(using).raw(
            f"UPDATE {cls._meta.db_table} SET status = %s, locked_until = %s, "
            "attempts = attempts + 1 WHERE id = %s AND (status IN (%s, %s) "
            "OR (status = %s AND locked_until <= %s AND attempts < %s)) RETURNING *",
            [S.PROCESSING, when(now + lease), pk, S.RECEIVED, S.FAILED,
             S.PROCESSING, when(now), settings.WHATSAPP_WEBHOOK_MAX_ATTEMPTS],
        ))
        return claimed[0] if claimed else None


# --- Webhook ingestion: contacts, statuses, history, templates (whatsapp/ingestion.py) ----------

class Contact(models.Model):
    """A lead: one WhatsApp user as seen by one organization (BSUIDs are portfolio-scoped).

    Identity lives in ContactIdentity (every BSUID and normalized phone ever seen, unique per
    organization); `user_id` and `wa_id` here are the current ones, denormalized for reading.
    """

    organization = models.ForeignKey(
        "organizations.Organization", on_delete=models.CASCADE, related_name="whatsapp_contacts",
        verbose_name=_("organization"),
    )
    user_id = models.CharField(_("business-scoped user id"), max_length=160, blank=True)
    # Normalized digits (Brazilian mobiles always with the 9th digit); empty for username users.
    wa_id = models.CharField(_("phone"), max_length=32, blank=True)
    username = models.CharField(_("username"), max_length=128, blank=True)
    profile_name = models.CharField(_("profile name"), max_length=200, blank=True)
    profile_name_at = models.DateTimeField(null=True, blank=True)
    # The name in the business's phone address book (smb_app_state_sync).
    saved_name = models.CharField(_("saved name"), max_length=200, blank=True)
    in_address_book = models.BooleanField(_("in the phone's address book"), null=True, blank=True)
    address_book_at = models.DateTimeField(null=True, blank=True)
    # Inbound Cloud API messages open the 24 h customer-service window; echoes never do.
    last_inbound_at = models.DateTimeField(_("last inbound message at"), null=True, blank=True)
    # A person answered from the phone app: automation must stay quiet.
    human_takeover_at = models.DateTimeField(_("answered by a person at"), null=True, blank=True)
    # Click-to-WhatsApp ad that brought the lead (earliest referral seen).
    referral = models.JSONField(_("ad referral"), null=True, blank=True)
    referral_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        db_table = "whatsapp_contacts"
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "user_id"], condition=~Q(user_id=""),
                                    name="uniq_contact_user_id_per_org"),
            models.UniqueConstraint(fields=["organization", "wa_id"], condition=~Q(wa_id=""),
                                    name="uniq_contact_phone_per_org"),
        ]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")

    def __str__(self) -> str:
        return self.profile_name or self.saved_name or self.wa_id or self.user_id

    def refresh_identity(self) -> None:
        """Recomputes the current BSUID and phone from this contact's identities."""
        self.set_identity([((i.kind, i.value), i.first_seen_at, i.superseded_at)
                           for i in self.identities.all()])
        Contact.objects.filter(pk=self.pk).update(user_id=self.user_id, wa_id=self.wa_id)

    def set_identity(self, identities) -> None:
        """From (key, first_seen_at, superseded_at): the newest BSUID not superseded (a user
        who changes number gets a new one) and the newest phone; ties broken by value."""
        floor = datetime.min.replace(tzinfo=UTC)
        users = [i for i in identities if i[0][0] == ContactIdentity.Kind.USER_ID]
        live = [i for i in users if i[2] is None] or users
        phones = [i for i in identities if i[0][0] == ContactIdentity.Kind.PHONE]
        newest = lambda items: max(items, key=lambda i: (i[1] or floor, i[0][1]))[0][1]  # noqa: E731
        self.user_id = newest(live) if live else ""
        self.wa_id = newest(phones) if phones else ""

    def note_profile(self, when: datetime | None, name: str, username: str) -> bool:
        """Keeps the profile of the newest item that carried one (ties: deterministic)."""
        floor = datetime.min.replace(tzinfo=UTC)
        new = (when or floor, name, username)
        if new <= (self.profile_name_at or floor, self.profile_name, self.username):
            return False
        self.profile_name_at, self.profile_name, self.username = when, name, username
        return True

    def note_address_book(self, when: datetime | None, present: bool, name: str) -> bool:
        """smb_app_state_sync add/remove; the newest wins, a removal wins a same-time tie."""
        floor = datetime.min.replace(tzinfo=UTC)
        new = (when or floor, not present, name)
        old = (self.address_book_at or floor, self.in_address_book is False, self.saved_name)
        if self.in_address_book is not None and new <= old:
            return False
        self.address_book_at, self.in_address_book = when, present
        self.saved_name = name[:200] if present else ""
        return True

    def note_inbound(self, when: datetime, referral: dict | None) -> None:
        """A user message: the service window opens; the earliest ad referral is the source."""
        if self.last_inbound_at is None or when > self.last_inbound_at:
            self.last_inbound_at = when
        if referral and (self.referral_at is None or when < self.referral_at):
            self.referral, self.referral_at = referral, when

    def note_takeover(self, when: datetime) -> None:
        if self.human_takeover_at is None or when > self.human_takeover_at:
            self.human_takeover_at = when


class ContactIdentity(models.Model):
    """One key that identifies a contact: a BSUID (current or previous) or a normalized phone."""

    class Kind(models.TextChoices):
        USER_ID = "user_id", _("Business-scoped user id")
        PHONE = "phone", _("Phone")

    organization = models.ForeignKey("organizations.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=16, choices=Kind)
    value = models.CharField(max_length=160)
    # Earliest message time that carried it: the newest BSUID is the current one.
    first_seen_at = models.DateTimeField(null=True, blank=True)
    # Set by user_id_update / user_changed_user_id: kept so late messages still match.
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "whatsapp_contact_identities"
        constraints = [
            models.UniqueConstraint(fields=["organization", "kind", "value"],
                                    name="uniq_contact_identity"),
        ]
        verbose_name = _("contact identity")
        verbose_name_plural = _("contact identities")

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class MessageStatus(models.Model):
    """One status webhook per (wamid, status): the audit trail and the dedupe key.

    Keyed by wamid, not by a foreign key: statuses often arrive for messages sent before we
    existed, or before the message row is stored.
    """

    organization = models.ForeignKey("organizations.Organization", null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
    config = models.ForeignKey(Config, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    wamid = models.CharField(max_length=255)
    status = models.CharField(_("status"), max_length=16)
    timestamp = models.DateTimeField(_("time"))
    recipient_id = models.CharField(max_length=32, blank=True)
    recipient_user_id = models.CharField(max_length=160, blank=True)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    pricing = models.JSONField(_("pricing"), null=True, blank=True)
    conversation = models.JSONField(null=True, blank=True)
    biz_opaque_callback_data = models.CharField(max_length=512, blank=True)
    raw = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "whatsapp_message_statuses"
        ordering = ["-timestamp"]
        constraints = [
            models.UniqueConstraint(fields=["wamid", "status"], name="uniq_status_per_wamid"),
        ]
        verbose_name = _("message status")
        verbose_name_plural = _("message statuses")

    def __str__(self) -> str:
        return f"{self.wamid} {self.status}"


class HistorySync(models.Model):
    """Coexistence history sync progress of one number, as support sees it."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress", _("In progress")
        COMPLETED = "completed", _("Completed")
        DECLINED = "declined", _("Declined by the business")

    config = models.OneToOneField(Config, on_delete=models.CASCADE, related_name="history_sync",
                                  verbose_name=_("phone number"))
    status = models.CharField(_("status"), max_length=16, choices=Status,
                              default=Status.IN_PROGRESS)
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    phase = models.PositiveSmallIntegerField(_("latest phase"), default=0)
    chunks_received = models.PositiveIntegerField(_("chunks received"), default=0)
    messages_imported = models.PositiveIntegerField(_("messages imported"), default=0)
    error_code = models.PositiveIntegerField(_("error code"), null=True, blank=True)
    error_message = models.TextField(_("error message"), blank=True)
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        db_table = "whatsapp_history_syncs"
        verbose_name = _("history sync")
        verbose_name_plural = _("history syncs")

    def __str__(self) -> str:
        return f"{self.config} {self.status} {self.progress}%"


class HistoryChunk(models.Model):
    """One `history` chunk received, per (phone number, phase, chunk_order)."""

    config = models.ForeignKey(Config, on_delete=models.CASCADE, related_name="history_chunks")
    phone_number_id = models.CharField(max_length=64)
    phase = models.PositiveSmallIntegerField(_("phase"))
    chunk_order = models.PositiveIntegerField(_("chunk order"))
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    thread_count = models.PositiveIntegerField(default=0)
    message_count = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)

    class Meta:
        db_table = "whatsapp_history_chunks"
        ordering = ["phone_number_id", "phase", "chunk_order"]
        constraints = [
            models.UniqueConstraint(fields=["phone_number_id", "phase", "chunk_order"],
                                    name="uniq_history_chunk"),
        ]
        verbose_name = _("history chunk")
        verbose_name_plural = _("history chunks")

    def __str__(self) -> str:
        return f"{self.phone_number_id} phase {self.phase} chunk {self.chunk_order}"


class TemplateStatusEvent(models.Model):
    """One `message_template_status_update` (APPROVED, REJECTED, PAUSED…) of a WABA's template."""

    connection = models.ForeignKey(Connection, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="template_events")
    organization = models.ForeignKey("organizations.Organization", null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
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
    created_at = models.DateTimeField(auto_now_add=True)

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
        return f"{self.template_name} {self.event}"


# --- Sending: templates, send policy, the outbound queue (whatsapp/sending.py) -----------------

class MessageTemplate(models.Model):
    """An approved-or-not template of a WABA, as last synced or reported by Meta.

    Kept current by `templates_sync` (the WABA listing) and by `message_template_status_update`
    events (whatsapp/templates.py). `use` maps it to what the product sends with it
    (confirmacao, lembrete, …), one template per use and organization.
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

    def __str__(self) -> str:
        return f"{self.name} ({self.language}) {self.status}"

    @property
    def is_sendable(self) -> bool:
        return self.status in self.SENDABLE


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
        return f"{self.organization}: {self.mode}"


class OutboundMessage(models.Model):
    """One message the product asked to send: the queue row and its audit record."""

    class Kind(models.TextChoices):
        TEMPLATE = "template", _("Template")
        TEXT = "text", _("Free-form text")

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
    config = models.ForeignKey(Config, on_delete=models.PROTECT, related_name="outbound_messages",
                               verbose_name=_("phone number"))
    contact = models.ForeignKey("Contact", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="outbound_messages", verbose_name=_("contact"))
    to = models.CharField(_("recipient"), max_length=32)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind)
    template = models.ForeignKey(MessageTemplate, null=True, blank=True,
                                 on_delete=models.SET_NULL, related_name="+",
                                 verbose_name=_("template"))
    template_name = models.CharField(_("template"), max_length=512, blank=True)
    template_language = models.CharField(_("language"), max_length=16, blank=True)
    use = models.CharField(_("use"), max_length=64, blank=True)
    parameters = models.JSONField(_("parameters"), default=dict, blank=True)
    text = models.TextField(_("text"), blank=True)
    # Automated (assistant, reminders) vs. a person pressing send in the product.
    automated = models.BooleanField(_("automated"), default=False)
    idempotency_key = models.CharField(_("idempotency key"), max_length=255, blank=True)
    request_hash = models.CharField(max_length=64, blank=True, editable=False)
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.QUEUED,
                              db_index=True)
    status_reason = models.TextField(_("reason"), blank=True)
    # Who queued it.
    actor = models.CharField(_("queued by"), max_length=16, choices=Actor, default=Actor.SYSTEM)
    queued_by_user = models.ForeignKey("auth.User", null=True, blank=True,
                                       on_delete=models.SET_NULL, related_name="+",
                                       verbose_name=_("user"))
    queued_by_token = models.ForeignKey("organizations.ApiToken", null=True, blank=True,
                                        on_delete=models.SET_NULL, related_name="+",
                                        verbose_name=_("API token"))
    # The exact Graph request body (or what it would have been, in dry run).
    payload = models.JSONField(_("request body"), null=True, blank=True)
    response = models.JSONField(_("Meta response"), null=True, blank=True)
    wamid = models.CharField(_("WhatsApp message id"), max_length=255, null=True, blank=True,
                             unique=True)
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
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        db_table = "whatsapp_outbound_messages"
        ordering = ["-created_at"]
        constraints = [
            # A retried request with the same key never queues a second message.
            models.UniqueConstraint(fields=["organization", "idempotency_key"],
                                    condition=~Q(idempotency_key=""),
                                    name="uniq_outbound_idempotency_key"),
        ]
        indexes = [
            # The sweeper looks only at rows still waiting to be sent.
            models.Index(fields=["status", "next_attempt_at"], name="outbound_pending_idx",
                         condition=Q(status__in=["queued", "sending"])),
        ]
        verbose_name = _("outbound message")
        verbose_name_plural = _("outbound messages")

    def __str__(self) -> str:
        return f"{self.kind} → {self.to} ({self.status})"

    @property
    def callback_data(self) -> str:
        """biz_opaque_callback_data: Meta echoes it on every status of this send."""
        return f"qlk:{self.pk}"


class OutboundEvent(models.Model):
    """One step in an outbound message's life (queued, attempt, retry, dry run, status…)."""

    message = models.ForeignKey(OutboundMessage, on_delete=models.CASCADE,
                                related_name="events", verbose_name=_("outbound message"))
    event = models.CharField(_("event"), max_length=32)
    at = models.DateTimeField(_("time"), default=timezone.now)
    detail = models.JSONField(_("details"), default=dict, blank=True)

    class Meta:
        db_table = "whatsapp_outbound_events"
        ordering = ["at", "id"]
        verbose_name = _("outbound message event")
        verbose_name_plural = _("outbound message events")

    def __str__(self) -> str:
        return f"{self.event} @ {self.at:%Y-%m-%d %H:%M:%S}"
